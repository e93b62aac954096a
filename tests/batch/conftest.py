"""Fixtures of the batch tests: one small artifact per session, a real Redis server."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

import embrecall

from .support import redis_url_or_skip, save_small

_prefixes = itertools.count()


@pytest.fixture(scope="session")
def artifact(tmp_path_factory) -> Path:
    """500 items in planted genres, 60 users with 20 seen items each, a catalog; exact."""
    return save_small(tmp_path_factory.mktemp("batch-artifact"))


@pytest.fixture(scope="session")
def rec(artifact):
    return embrecall.load(artifact)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    yield from redis_url_or_skip(tmp_path_factory)


@pytest.fixture
def redis_url(redis_server) -> str:
    """The test server's URL with a key prefix of this test's own."""
    return f"{redis_server}?prefix=test{next(_prefixes)}"


@pytest.fixture
def batch_cli(capsys):
    """``run("batch", ...)`` / ``run("cached", ...)``: the batch commands as the CLI parses them;
    each must succeed, and answers with what it printed."""
    import argparse

    from embrecall.batch.commands import add_commands

    parser = argparse.ArgumentParser(prog="embrecall")
    add_commands(parser.add_subparsers(dest="command"))

    def run(*argv: str) -> str:
        args = parser.parse_args(list(argv))
        assert args.run(args) == 0
        return capsys.readouterr().out

    return run
