"""Optional libraries skip their tests where absent, except where CI requires them all."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from helpers import EXTRAS, import_extra

TESTS = Path(__file__).parent


def test_an_absent_extra_skips_by_default(monkeypatch):
    monkeypatch.delenv("EMBRECALL_REQUIRE_EXTRAS", raising=False)
    with pytest.raises(pytest.skip.Exception):
        import_extra("playwright.no_such_module")


def test_an_absent_extra_fails_where_extras_are_required(monkeypatch):
    monkeypatch.setenv("EMBRECALL_REQUIRE_EXTRAS", "1")
    with pytest.raises(pytest.fail.Exception, match="failed to import"):
        import_extra("playwright.no_such_module")


def test_only_listed_extras_go_through_the_helper():
    with pytest.raises(ValueError, match="not one of the extras"):
        import_extra("torch")


def test_no_test_skips_on_an_extra_with_plain_importorskip():
    """Such a skip would pass unnoticed in CI; import_extra turns it into a failure there."""
    names = "|".join(sorted(EXTRAS))
    plain = re.compile(rf"importorskip\(\s*[\"']({names})[\"'.]")
    offenders = [
        str(path.relative_to(TESTS))
        for path in TESTS.rglob("*.py")
        if path.name != "helpers.py" and plain.search(path.read_text())
    ]
    assert offenders == []
