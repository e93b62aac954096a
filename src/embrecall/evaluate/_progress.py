"""When to show a progress bar: on request, or by default only when a person is watching."""

from __future__ import annotations

import sys


def bar_disabled(progress: bool | None) -> bool:
    """True to hide the bar: ``progress=False``, or ``None`` when stderr is not a terminal."""
    if progress is None:
        return not (hasattr(sys.stderr, "isatty") and sys.stderr.isatty())
    return not progress
