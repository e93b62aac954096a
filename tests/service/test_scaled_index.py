"""A tuned, norm-augmented IVF version served from memory-mapped files, over real HTTP."""

from __future__ import annotations

import numpy as np
import pytest

import embrecall
from embrecall.versions import VersionRoot
from helpers import import_extra

from .support import USERS, build_version

import_extra("fastapi")
import_extra("httpx")


@pytest.fixture(scope="module")
def tuned_root(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tuned")
    rec = build_version(tmp / "data", seed=3, index={"recommend": "IVF16,Flat"}, target_recall=0.9)
    rec.save(str(tmp / "artifact"))
    root = VersionRoot(tmp / "root")
    root.publish(tmp / "artifact", "tuned")
    return root


def test_mapped_server_answers_as_the_library_with_the_tuned_parameters(tuned_root, serve):
    server = serve(tuned_root.path, mmap=True)
    oracle = embrecall.load(tuned_root.path_of("tuned"))
    index = oracle.indexes[oracle.query_kinds["recommend"].index_name]
    assert index.mips is not None and "tuning" in index.notes
    with server.client() as client:
        served = client.get("/v1/info").json()["artifact"]["queries"]["recommend"]
        assert served["search_params"] == index.search_params
        assert served["tuning"]["reached"] and served["mips"]["transform"] == "norm-augmentation"
        for user in USERS[:5]:
            body = client.get(f"/v1/users/{user}/recommendations", params={"k": 10}).json()
            ids, scores = oracle.recommend(user, k=10)
            assert [r["id"] for r in body["results"]] == ids.tolist()
            np.testing.assert_allclose([r["score"] for r in body["results"]], scores, rtol=1e-5)
        # A request still overrides the tuned nprobe.
        wide = client.get(f"/v1/users/{USERS[0]}/recommendations", params={"k": 10, "nprobe": 16})
        assert wide.status_code == 200
        assert [r["id"] for r in wide.json()["results"]] == oracle.recommend(
            USERS[0], k=10, params={"nprobe": 16}
        )[0].tolist()
