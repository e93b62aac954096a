"""Exact top-k on a GPU with torch: one matrix product and a two-stage top-k per query block.

A plain ``torch.topk`` over a million scores per row takes several passes over them and costs
more than the product itself (measured on an H200: 60k users/s in all). So selection is done in
two exact stages: the scores of a row are cut into groups of ``GROUP`` consecutive items and each
group's maximum taken (one pass); the k groups with the largest maxima hold every one of the
row's top k (a group holding a top-k item has a maximum at least the k-th score, and at most k
groups can, since their maxima are distinct top-k items); then one small ``topk`` over those
k x GROUP candidates gives the answer. Ties at the k-th score may pick another, equally scored
item.

Optional: nothing imports torch until a GPU run is asked for, and the same code runs on torch's
CPU build (which is how the tests check it where no GPU is lent). Scores are fp32 with TF32 off
for the duration of a search, so results equal the CPU path's up to float rounding.
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np

from embrecall.errors import InvalidArgumentError, require_extra

# Bytes of scores one product may take: a quarter of the free GPU memory leaves room for topk's
# workspace and for whatever else shares the card. On CPU torch, 256 MiB.
_GPU_SHARE = 0.25
_CPU_SCORE_BYTES = 256 << 20
_MAX_SUB_BATCH = 16_384
# Items per group of the first selection stage: one max per 128 scores shrinks the top-k input
# 128-fold, while k x 128 candidates stay cheap to gather.
GROUP = 128


def cuda_available() -> bool:
    """True when torch is installed and sees a CUDA device."""
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def resolve_device(device: str) -> str:
    """``"cpu"`` or ``"cuda"`` for a requested device, refusing ``"cuda"`` without a GPU."""
    if device == "auto":
        return "cuda" if cuda_available() else "cpu"
    if device == "cuda" and not cuda_available():
        raise InvalidArgumentError(
            "device 'cuda' asked for, but torch is not installed or sees no CUDA GPU "
            "(install 'embrecall[gpu]' on a GPU machine, or use device 'cpu')"
        )
    if device not in ("cpu", "cuda"):
        raise InvalidArgumentError(f"device must be auto, cpu or cuda, not {device!r}")
    return device


class TorchExact:
    """Exact search of one base (items or users) held on a torch device.

    Parameters
    ----------
    base : (n, d) float32
        Already prepared for the metric (unit length for cosine).
    metric : {"ip", "cosine", "l2"}
    device : str
        ``"cuda"``, ``"cuda:1"`` or ``"cpu"``.
    base_chunk : int, optional
        Base rows per product; by default the whole base at once (a GPU has room for it).
    select : {"auto", "grouped", "topk"}
        Two-stage exact selection (see the module notes) or one plain ``torch.topk``; ``"auto"``
        groups on a GPU and not on CPUs, where ``torch.topk`` measured faster.
    """

    def __init__(
        self,
        base: np.ndarray,
        metric: str,
        device: str = "cuda",
        base_chunk: int | None = None,
        select: str = "auto",
    ) -> None:
        torch = require_extra("torch", "gpu")
        if metric not in ("ip", "cosine", "l2"):
            raise InvalidArgumentError(f"metric must be ip, cosine or l2, not {metric!r}")
        if select not in ("auto", "grouped", "topk"):
            raise InvalidArgumentError(f"select must be auto, grouped or topk, not {select!r}")
        self.torch = torch
        self.device = torch.device(device)
        self.metric = metric
        if select == "auto":
            select = "grouped" if self.device.type == "cuda" else "topk"
        self.select = select
        base = np.ascontiguousarray(base, dtype=np.float32)
        self.n = int(base.shape[0])
        # Zero rows pad the base to whole groups; their scores are set to -inf after each
        # product, so that every chunk can be viewed as (queries, groups, GROUP) without a copy.
        padded = -(-self.n // GROUP) * GROUP
        self.base = torch.zeros((padded, base.shape[1]), dtype=torch.float32, device=self.device)
        self.base[: self.n] = torch.from_numpy(base).to(self.device)
        chunk = int(base_chunk) if base_chunk else padded
        self.base_chunk = max(GROUP, -(-chunk // GROUP) * GROUP)
        self.sqnorms = (self.base * self.base).sum(dim=1) if metric == "l2" else None

    def search(
        self,
        queries: np.ndarray,
        k: int,
        exclude: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` base rows per query; same contract as :func:`~.kernel.exact_knn`.

        Parameters
        ----------
        queries : (b, d) float32, prepared like the base
        k : int
        exclude : (indptr (b + 1,), cols (nnz,)), optional

        Returns
        -------
        scores : (b, k') float32 (NaN padded), rows : (b, k') int64 (-1 padded), k' = min(k, n)
        """
        b = queries.shape[0]
        kk = min(int(k), self.n)
        scores = np.full((b, kk), np.nan, dtype=np.float32)
        rows = np.full((b, kk), -1, dtype=np.int64)
        if b == 0:
            return scores, rows
        indptr, cols = exclude if exclude is not None else (np.zeros(b + 1, np.int64), None)
        step = self._sub_batch(b)
        with _exact_fp32(self.torch):
            for lo in range(0, b, step):
                hi = min(b, lo + step)
                sub_ex = None
                if cols is not None and indptr[hi] > indptr[lo]:
                    counts = np.diff(indptr[lo : hi + 1])
                    sub_ex = (
                        np.repeat(np.arange(hi - lo, dtype=np.int64), counts),
                        cols[indptr[lo] : indptr[hi]],
                    )
                s, r = self._search_sub(queries[lo:hi], kk, sub_ex)
                scores[lo:hi], rows[lo:hi] = s, r
        return scores, rows

    def _search_sub(self, queries: np.ndarray, kk: int, pairs) -> tuple[np.ndarray, np.ndarray]:
        torch = self.torch
        q = torch.from_numpy(np.ascontiguousarray(queries, dtype=np.float32)).to(self.device)
        if pairs is not None:
            pr = torch.from_numpy(pairs[0]).to(self.device)
            pc = torch.from_numpy(pairs[1]).to(self.device)
        vals, idx = [], []
        total = self.base.shape[0]
        for start in range(0, total, self.base_chunk):
            stop = min(total, start + self.base_chunk)
            if start >= self.n:
                break  # a chunk of padding only
            block = q @ self.base[start:stop].T
            if self.metric == "l2":
                # Rank by 2 q.x - |x|^2 (higher is better); |q|^2 is the same for every x.
                block.mul_(2).sub_(self.sqnorms[start:stop])
            if stop > self.n:
                block[:, self.n - start :] = float("-inf")  # the padding rows
            if pairs is not None:
                hit = (pc >= start) & (pc < stop)
                block[pr[hit], pc[hit] - start] = float("-inf")
            v, i = self._select(block, min(kk, min(stop, self.n) - start))
            vals.append(v)
            idx.append(i + start)
        v, i = (vals[0], idx[0]) if len(vals) == 1 else _merge(torch, vals, idx, kk)
        missing = torch.isinf(v)  # -inf: only excluded cells were left
        i = i.masked_fill(missing, -1)
        if self.metric == "l2":
            v = (q * q).sum(dim=1, keepdim=True) - v
        v = v.masked_fill(missing, float("nan"))
        return v.cpu().numpy(), i.cpu().numpy().astype(np.int64, copy=False)

    def _select(self, block, kk: int):
        """Top ``kk`` (values, columns) of each row of ``block`` (b, c), c a multiple of GROUP."""
        torch = self.torch
        b, c = block.shape
        if self.select == "topk" or kk * GROUP * 2 >= c:
            return torch.topk(block, kk, dim=1)
        maxima = block.view(b, c // GROUP, GROUP).amax(dim=2)
        _, top_groups = torch.topk(maxima, kk, dim=1, sorted=False)
        offsets = torch.arange(GROUP, device=block.device)
        columns = (top_groups.unsqueeze(2) * GROUP + offsets).reshape(b, kk * GROUP)
        values, pos = torch.topk(torch.gather(block, 1, columns), kk, dim=1)
        return values, torch.gather(columns, 1, pos)

    def _sub_batch(self, b: int) -> int:
        torch = self.torch
        per_query = 4 * min(self.base.shape[0], self.base_chunk)
        if self.device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(self.device)
            budget = int(free * _GPU_SHARE)
        else:
            budget = _CPU_SCORE_BYTES
        return max(1, min(b, _MAX_SUB_BATCH, budget // per_query))


def _merge(torch, vals: list, idx: list, kk: int):
    v, i = torch.cat(vals, dim=1), torch.cat(idx, dim=1)
    best, pos = torch.topk(v, kk, dim=1)
    return best, torch.gather(i, 1, pos)


@contextmanager
def _exact_fp32(torch):
    """TF32 off while searching: it rounds inputs to 10 bits and would change the ranking.

    The flag is process-wide in torch, so it is restored afterwards.
    """
    before = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = before
