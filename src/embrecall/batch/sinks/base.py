"""What every sink does: versioned runs, resumable blocks, one atomic flip to make a run current.

A run writes under a new *version* that no reader looks at. Only when every block is written
does :meth:`SinkRun.commit` point the sink's *current* pointer at it, in one atomic step (a
Redis ``SET``, a file ``rename``, one SQLite transaction). A reader follows the pointer, so it
sees the previous complete version or the new complete version, never a mix. An interrupted run
leaves the pointer where it was; its finished blocks stay recorded under the run's fingerprint
so that the same plan, started again, resumes where it stopped.
"""

from __future__ import annotations

import secrets
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np

from embrecall.errors import EmbrecallError


class SinkError(EmbrecallError):
    """A sink cannot be reached, read or written (what and where is in the message)."""


def new_version(fingerprint: str) -> str:
    """A version name that sorts by time and names its plan: ``20261127T214000Z-1a2b3c4d-9f0e``.

    The random tail keeps two runs of one plan started in the same second apart.
    """
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    return f"{stamp}-{fingerprint[:8]}-{secrets.token_hex(2)}"


class SinkRun(ABC):
    """One run being written. Methods are called from one thread at a time."""

    version: str
    resumed: bool

    @abstractmethod
    def done_blocks(self) -> set[str]:
        """Names (``"u2i:12"``) of the blocks this run already holds."""

    @abstractmethod
    def write_block(
        self,
        block: str,
        query_key: str,
        query_ids: np.ndarray,
        ids: np.ndarray,
        scores: np.ndarray,
        counts: np.ndarray,
    ) -> None:
        """Store one block's results and record the block as done, in that order.

        Parameters
        ----------
        block : str
            The block's name, recorded as done once its results are stored.
        query_key : {"u2i", "i2i", "u2u"}
        query_ids : (b,) ids of the queries
        ids : (b, k') result ids, best first, padded past ``counts``
        scores : (b, k') float32
        counts : (b,) int, the real results of each row
        """

    @abstractmethod
    def commit(self) -> None:
        """Make this run current (atomically), then retire older versions."""

    def close(self) -> None:  # noqa: B027 -- optional hook
        """Release connections; an uncommitted run stays resumable."""


class SinkReader(ABC):
    """Reads the current version (or a named one) of a sink."""

    @abstractmethod
    def current(self) -> str | None:
        """The current version, or None before any run completed."""

    @abstractmethod
    def meta(self, version: str) -> dict[str, Any]:
        """The plan's description stored with ``version`` (k, metrics, id kinds, artifact)."""

    @abstractmethod
    def get_many(
        self, query_key: str, ids: Sequence, version: str
    ) -> list[tuple[np.ndarray, np.ndarray] | None]:
        """``(result ids, scores)`` of each of ``ids`` in ``version`` (None where none)."""

    def close(self) -> None:  # noqa: B027 -- optional hook
        """Release connections."""


class Sink(ABC):
    """A place batch results go: ``open_run`` to write, ``reader`` to read."""

    url: str
    storage: str = "on disk"  # where estimate_bytes lands, for the printed plan

    def check(self) -> None:  # noqa: B027 -- sinks that can be unreachable override it
        """Fail fast, before any computing, when the sink cannot be reached or written."""

    @abstractmethod
    def open_run(self, fingerprint: str, meta: dict[str, Any], *, restart: bool) -> SinkRun:
        """Start a run of the plan ``fingerprint``, or resume an interrupted one of it.

        Must fail fast, before any computing, when the sink cannot be reached.
        """

    @abstractmethod
    def reader(self) -> SinkReader:
        """A reader of this sink."""

    def estimate_bytes(self, n_values: int, value_bytes: int, key_bytes: int) -> int:
        """Storage the run will take: ``n_values`` values of ``value_bytes`` each."""
        return n_values * (value_bytes + key_bytes)
