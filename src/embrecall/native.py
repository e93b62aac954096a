"""embrecall's optional C loops (``embrecall._native``), or None where they were not built.

They are compiled at install where a C compiler is present; everything has a Python path
without them, slower by some microseconds a query (see :mod:`embrecall.index.exclusion`).
``EMBRECALL_NO_NATIVE=1`` takes those paths even where the loops are built.
"""

from __future__ import annotations

import os

native = None
if os.environ.get("EMBRECALL_NO_NATIVE", "") in ("", "0"):
    try:
        from embrecall import _native as native
    except ImportError:  # installed without a C compiler
        native = None

__all__ = ["native"]
