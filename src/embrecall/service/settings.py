"""Typed settings of the service, from keyword arguments and ``EMBRECALL_*`` environment variables.

Every field can be set as ``EMBRECALL_<FIELD NAME IN CAPITALS>`` (``EMBRECALL_MAX_K=500``).
There is no default secret: without ``EMBRECALL_ADMIN_API_KEY`` the admin endpoints are
switched off, and without ``EMBRECALL_API_KEY`` the read endpoints are open.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from embrecall.errors import InvalidArgumentError, require_extra
from embrecall.service.canary_defaults import DEFAULT_K, DEFAULT_MIN_RECALL, DEFAULT_QUERIES

require_extra("fastapi", "server")  # pydantic comes with it; name the extra, not a bare ImportError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError  # noqa: E402

ENV_PREFIX = "EMBRECALL_"


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))  # the cores this process may use, not the host's
    except AttributeError:
        return os.cpu_count() or 1


def _default_search_threads(cores: int) -> int:
    # Measured on 2 cores (docs/service.md): searches on the event loop match worker threads in
    # throughput, and their p99 is several times lower, because every hand-off between threads
    # waits for a core that the load, the loop or another job holds. With more cores the
    # threads run searches side by side and win.
    return 0 if cores <= 2 else cores


class Settings(BaseModel):
    """What the service serves and how; immutable once the app is built."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    target: str | None = Field(
        None, description="An artifact directory, or a root of versions (versions/ + CURRENT)."
    )
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    api_key: SecretStr | None = Field(
        None, description="When set, read endpoints need it in the X-API-Key header."
    )
    admin_api_key: SecretStr | None = Field(
        None, description="Admin endpoints need it in X-API-Key; they are off when it is unset."
    )
    default_k: int = Field(10, ge=1)
    max_k: int = Field(1000, ge=1)
    max_batch: int = Field(256, ge=1, description="Most ids (or vectors) in one batch request.")
    max_exclude: int = Field(10_000, ge=0, description="Most excluded ids per query.")
    max_body_bytes: int = Field(1 << 20, ge=1)
    max_search_param: int = Field(
        4096, ge=1, description="Cap on per-request nprobe / efSearch (they buy recall with time)."
    )
    search_threads: int = Field(
        default_factory=lambda: _default_search_threads(_cores()),
        ge=0,
        description="Searches running at once in worker threads (with omp_threads this keeps "
        "threads within the cores); 0 runs them on the event loop, without thread hand-offs. "
        "Default: 0 on 1 or 2 usable cores, else the number of usable cores.",
    )
    omp_threads: int = Field(1, ge=1, description="OpenMP threads per faiss call.")
    watch_interval_s: float = Field(
        1.0, ge=0, description="How often to look at CURRENT for a new version; 0 turns it off."
    )
    canary_queries: int | None = Field(
        None,
        ge=0,
        description="Canary query ids per query kind; 0: none. Default: what `publish` recorded "
        f"for the version, else {DEFAULT_QUERIES}.",
    )
    canary_k: int | None = Field(
        None, ge=1, description=f"Default: as published, else {DEFAULT_K}."
    )
    canary_min_recall: float | None = Field(
        None,
        ge=0,
        le=1,
        description="Mean recall@k (ties tolerated) every query kind must reach. Default: the "
        f"floor `publish` checked the version with, else {DEFAULT_MIN_RECALL}; one floor for "
        "both, so a version publish accepted is not refused here.",
    )
    recall_sample_rate: float = Field(
        0.01, ge=0, le=1, description="Share of single queries re-checked exactly, off the path."
    )
    recall_k: int = Field(10, ge=1, description="Live recall is measured at this k.")
    log_level: str = "info"
    access_log: bool = False
    mmap: bool = Field(
        False,
        description="Map vectors and index codes from the artifact files instead of reading "
        "them into memory: server processes on one machine then share one copy.",
    )
    web_page: bool = Field(
        True,
        description="Serve the exploration page at / (the page needs no key; the API calls "
        "it makes send the read key the user types in).",
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Settings from ``EMBRECALL_*`` variables, with ``overrides`` (not None) on top.

        Raises
        ------
        InvalidArgumentError
            A value does not parse or is out of range; the message names the variable.
        """
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for name in cls.model_fields:
            raw = environ.get(ENV_PREFIX + name.upper())
            if raw is not None and raw != "":
                values[name] = raw
        values.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"])
            source = (
                ENV_PREFIX + field.upper() if field in values and field not in overrides else field
            )
            raise InvalidArgumentError(f"setting {source}: {first['msg']}") from None

    def to_env(self) -> dict[str, str]:
        """The ``EMBRECALL_*`` variables :meth:`from_env` reads back as these settings (how
        ``serve --workers`` hands them to its worker processes); the keys included."""
        env = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            elif isinstance(value, bool):
                value = "true" if value else "false"
            env[ENV_PREFIX + name.upper()] = "" if value is None else str(value)  # "": unset
        return env

    def public(self) -> dict[str, Any]:
        """The limits a client may want to know (no keys, no paths)."""
        return {
            "default_k": self.default_k,
            "max_k": self.max_k,
            "max_batch": self.max_batch,
            "max_exclude": self.max_exclude,
            "max_body_bytes": self.max_body_bytes,
            "max_search_param": self.max_search_param,
            "read_key_required": self.api_key is not None,
        }
