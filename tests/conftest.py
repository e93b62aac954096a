"""Test-wide hooks. Builders and data live in helpers.py (importable from every test folder)."""

from __future__ import annotations

import importlib

import pytest

from helpers import EXTRAS, extras_required


def pytest_configure(config):
    """Where the extras are required (CI installs them all), one that fails to import stops the
    run at once, with every failure named, rather than surfacing test by test."""
    if not extras_required():
        return
    failed = []
    for name in sorted(EXTRAS):
        try:
            importlib.import_module(name)
        except Exception as exc:  # an installed library can fail with more than ImportError
            failed.append(f"{name}: {exc!r}")
    if failed:
        raise pytest.UsageError(
            "EMBRECALL_REQUIRE_EXTRAS is set but these extras fail to import:\n  "
            + "\n  ".join(failed)
        )
