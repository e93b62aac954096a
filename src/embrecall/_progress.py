"""When to show a progress bar: on request, or by default only when a person is watching."""

from __future__ import annotations

import sys


def bar_disabled(progress: bool | None, *, small: bool = False) -> bool:
    """True to hide a tqdm bar.

    ``progress=False`` hides it and ``True`` shows it. ``None`` (the default everywhere) shows it
    only when stderr, where tqdm writes, is a terminal and the work is not ``small``: a bar that
    flashes by for a second is noise.
    """
    if progress is None:
        return small or not (hasattr(sys.stderr, "isatty") and sys.stderr.isatty())
    return not progress
