"""The torch exact kernel's old home; it lives in :mod:`embrecall.index.torch_exact` now.

Re-exported so that ``from embrecall.batch.gpu import TorchExact`` (benchmarks) keeps working.
"""

from embrecall.index.torch_exact import GROUP, TorchExact, cuda_available

__all__ = ["GROUP", "TorchExact", "cuda_available"]
