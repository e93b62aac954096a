"""Live recall monitoring in a real server: sampled queries re-answered exactly, off the path."""

from __future__ import annotations

import pytest

from helpers import import_extra

from .support import USERS, wait_for

import_extra("fastapi")
import_extra("httpx")


def test_sampled_queries_report_recall_in_info_and_metrics(serve, root):
    server = serve(root.path, recall_sample_rate=1.0, recall_k=5)
    with server.client() as client:
        for user in USERS[:10]:
            assert (
                client.get(f"/v1/users/{user}/recommendations", params={"k": 5}).status_code == 200
            )

        def checked():
            live = client.get("/v1/info").json()["live_recall"]
            return live["query_kinds"].get("recommend", {}).get("checked", 0) >= 10 and live

        live = wait_for(checked)
        assert live["query_kinds"]["recommend"]["recall"] == pytest.approx(1.0)  # exact index
        assert live["dropped"] == 0 and live["errors"] == 0
        metrics = client.get("/metrics").text
        assert 'embrecall_live_recall{query_kind="recommend"} 1.0' in metrics


def test_sampling_off_reports_nothing(serve, root):
    server = serve(root.path, recall_sample_rate=0.0)
    with server.client() as client:
        client.get(f"/v1/users/{USERS[0]}/recommendations")
        assert client.get("/v1/info").json()["live_recall"] is None
