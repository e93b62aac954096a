"""Vector indexes over rows 0..n-1 of one vector set; nothing here knows external ids."""

from embrecall.index.exact import exact_search
from embrecall.index.faiss_index import METRICS, Metric, VectorIndex

__all__ = ["METRICS", "Metric", "VectorIndex", "exact_search"]
