"""The blocked oracle's old home; it lives in :mod:`embrecall.index.exact` now.

Re-exported so that ``from embrecall.evaluate.oracle import exact_topk`` keeps working.
"""

from embrecall.index.exact import BLOCK_BYTES, exact_topk

__all__ = ["BLOCK_BYTES", "exact_topk"]
