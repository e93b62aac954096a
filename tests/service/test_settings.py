"""Settings from keyword arguments and EMBRECALL_* variables."""

from __future__ import annotations

import pytest

from embrecall.errors import InvalidArgumentError
from helpers import import_extra

import_extra("fastapi")

from embrecall.service import Settings, create_app  # noqa: E402


def test_defaults_have_no_secrets():
    s = Settings.from_env({})
    assert s.api_key is None and s.admin_api_key is None
    assert s.host == "127.0.0.1" and s.max_k == 1000 and s.omp_threads == 1
    # The canary floor is what publish recorded for each version unless set here.
    assert s.search_threads >= 0 and s.canary_min_recall is None


def test_searches_run_on_the_event_loop_on_two_cores_or_fewer():
    from embrecall.service.settings import _default_search_threads

    assert [_default_search_threads(n) for n in (1, 2, 3, 8)] == [0, 0, 3, 8]


def test_environment_values_are_parsed():
    env = {
        "EMBRECALL_MAX_K": "50",
        "EMBRECALL_ACCESS_LOG": "true",
        "EMBRECALL_WATCH_INTERVAL_S": "0.5",
        "EMBRECALL_ADMIN_API_KEY": "s3cret",
        "EMBRECALL_UNRELATED": "x",
        "OTHER": "y",
    }
    s = Settings.from_env(env)
    assert s.max_k == 50 and s.access_log is True and s.watch_interval_s == 0.5
    assert s.admin_api_key.get_secret_value() == "s3cret" and "s3cret" not in repr(s)


def test_keyword_arguments_win_over_the_environment():
    s = Settings.from_env({"EMBRECALL_MAX_K": "50"}, max_k=70, port=None)
    assert s.max_k == 70 and s.port == 8000


@pytest.mark.parametrize(
    "env, name",
    [
        ({"EMBRECALL_MAX_K": "many"}, "EMBRECALL_MAX_K"),
        ({"EMBRECALL_PORT": "70000"}, "EMBRECALL_PORT"),
        ({"EMBRECALL_CANARY_MIN_RECALL": "2"}, "EMBRECALL_CANARY_MIN_RECALL"),
    ],
)
def test_bad_values_name_the_variable(env, name):
    with pytest.raises(InvalidArgumentError, match=name):
        Settings.from_env(env)


def test_bad_keyword_is_named():
    with pytest.raises(InvalidArgumentError, match="setting max_batch"):
        Settings.from_env({}, max_batch=0)


def test_create_app_needs_a_target(monkeypatch, tmp_path):
    monkeypatch.delenv("EMBRECALL_TARGET", raising=False)
    with pytest.raises(InvalidArgumentError, match="no target"):
        create_app()
    from embrecall.errors import ArtifactError

    with pytest.raises(ArtifactError, match="neither an artifact"):
        create_app(target=str(tmp_path))


def test_settings_go_through_the_environment_unchanged():
    # how `serve --workers` hands its settings to the worker processes
    s = Settings.from_env(
        {"EMBRECALL_ADMIN_API_KEY": "s3cret"},
        target="/srv/recall",
        watch_interval_s=0.05,
        access_log=True,
        canary_min_recall=0.85,
    )
    env = s.to_env()
    assert env["EMBRECALL_API_KEY"] == "" and env["EMBRECALL_ADMIN_API_KEY"] == "s3cret"
    assert Settings.from_env(env) == s


def test_workers_map_the_version_and_share_the_cores():
    from embrecall.service.workers import worker_settings

    s = worker_settings(Settings.from_env({}, target="x"), workers=64)
    assert s.mmap is True and s.search_threads == 0  # under one core each
    assert worker_settings(Settings.from_env({}, search_threads=3), 64).search_threads == 3
