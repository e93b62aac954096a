"""Shared fixtures. Builders and data live in helpers.py (importable from every test folder)."""

from __future__ import annotations

import pytest

from helpers import planted_clusters


@pytest.fixture(scope="session")
def clusters():
    return planted_clusters()
