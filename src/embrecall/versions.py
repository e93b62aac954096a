"""A root of immutable artifact versions and a pointer to the current one.

Layout::

    ROOT/
      versions/<id>/     one artifact directory per version; never changed once published
      CURRENT            the id of the version to serve, one line; replaced atomically
      HISTORY            JSON: the stack of earlier current versions (for rollback) and a log
      .lock              taken while publishing or moving the pointer

A version id matches ``[A-Za-z0-9_.-]{1,64}`` and does not start with a dot (dot names are the
staging directories of publishes in progress), so an id is never a path. Publishing copies the
artifact into a staging directory inside ROOT, verifies the copy's checksums and renames it into
``versions/`` (one atomic ``rename`` on one file system), then replaces ``CURRENT`` by
write-temp + ``os.replace``: a reader sees the old version or the new one, never half of one.

This module knows the layout of a root; the layout of one artifact is ``embrecall.artifact``'s.
Nothing here imports faiss or the HTTP stack, so the CLI's publish and rollback stay light.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from embrecall._durable import atomic_write_text, fsync_dir, fsync_tree
from embrecall.artifact import MANIFEST, read_manifest, verify_artifact
from embrecall.errors import ArtifactError, InvalidArgumentError

log = logging.getLogger("embrecall")

VERSION_ID_PATTERN = r"[A-Za-z0-9_.-]{1,64}"
_VERSION_ID = re.compile(VERSION_ID_PATTERN)
POINTER = "CURRENT"
HISTORY = "HISTORY"
VERSIONS = "versions"
_LOCK = ".lock"
_LOG_LIMIT = 1000  # HISTORY keeps the last entries only; it is read on every `versions` call


class UnknownVersionError(ArtifactError):
    """A version id that the root does not hold."""


def check_version_id(version: object) -> str:
    """``version`` if it is a valid version id, else :class:`InvalidArgumentError`.

    Valid: 1 to 64 of ``A-Z a-z 0-9 _ . -``, not starting with a dot (which also rules out
    ``.`` and ``..``).
    """
    if not isinstance(version, str) or not _VERSION_ID.fullmatch(version):
        raise InvalidArgumentError(
            f"version id must be 1 to 64 of the characters A-Z a-z 0-9 _ . -, got {version!r}"
        )
    if version.startswith("."):
        raise InvalidArgumentError(f"version id must not start with a dot, got {version!r}")
    return version


@dataclass(frozen=True)
class VersionInfo:
    """One published version, as ``embrecall versions`` lists it."""

    id: str
    path: Path
    created_at: str | None  # when the artifact was built (its manifest)
    published_at: str  # when it entered the root
    bytes: int
    current: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "created_at": self.created_at,
            "published_at": self.published_at,
            "bytes": self.bytes,
            "current": self.current,
        }


class VersionRoot:
    """A directory of immutable artifact versions with an atomically replaced pointer.

    Parameters
    ----------
    path : path-like
        The root directory. :meth:`publish` creates it; the other methods expect it.
    """

    mode = "root"

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"VersionRoot({str(self.path)!r})"

    @staticmethod
    def looks_like_root(path: str | os.PathLike) -> bool:
        """Whether ``path`` is laid out as a version root (and is not one artifact)."""
        p = Path(path)
        return (
            p.is_dir()
            and not (p / MANIFEST).exists()
            and ((p / VERSIONS).is_dir() or (p / POINTER).exists())
        )

    # -- reading ---------------------------------------------------------------------------
    def current(self) -> str | None:
        """The id that ``CURRENT`` names, or None when nothing was published yet."""
        try:
            text = (self.path / POINTER).read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise ArtifactError(f"{self.path / POINTER}: unreadable ({exc})") from None
        try:
            return check_version_id(text)
        except InvalidArgumentError:
            raise ArtifactError(
                f"{self.path / POINTER}: does not hold a version id ({text[:80]!r})"
            ) from None

    def ids(self) -> list[str]:
        """Published version ids, oldest publish first."""
        base = self.path / VERSIONS
        if not base.is_dir():
            return []
        found = [p for p in base.iterdir() if p.is_dir() and _is_version_id(p.name)]
        found.sort(key=lambda p: (p.stat().st_mtime, p.name))
        return [p.name for p in found]

    def has(self, version: str) -> bool:
        return _is_version_id(version) and (self.path / VERSIONS / version).is_dir()

    def path_of(self, version: str) -> Path:
        """The artifact directory of ``version``; :class:`UnknownVersionError` if absent."""
        check_version_id(version)
        path = self.path / VERSIONS / version
        if not path.is_dir():
            raise UnknownVersionError(f"no version {version!r} in {self.path}")
        return path

    def versions(self) -> list[VersionInfo]:
        """Every published version with its dates, size and whether it is current."""
        current = self.current()
        out = []
        for vid in self.ids():
            path = self.path / VERSIONS / vid
            try:
                manifest = read_manifest(path)
                created = manifest.get("created_at")
                size = sum(int(m.get("bytes", 0)) for m in manifest.get("files", {}).values())
            except ArtifactError:
                created, size = None, 0
            published = datetime.fromtimestamp(path.stat().st_mtime, timezone.utc)
            out.append(
                VersionInfo(
                    vid,
                    path,
                    created,
                    published.isoformat(timespec="seconds"),
                    size,
                    vid == current,
                )
            )
        return out

    def history(self) -> dict[str, Any]:
        """``{"previous": [older current ids, most recent last], "log": [events]}``."""
        try:
            data = json.loads((self.path / HISTORY).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {"previous": [], "log": []}
        except (OSError, ValueError) as exc:
            raise ArtifactError(f"{self.path / HISTORY}: unreadable ({exc})") from None
        if not isinstance(data, dict):
            raise ArtifactError(f"{self.path / HISTORY}: not a JSON object")
        return {"previous": list(data.get("previous", [])), "log": list(data.get("log", []))}

    # -- writing ---------------------------------------------------------------------------
    def publish(
        self,
        artifact: str | os.PathLike,
        version: str | None = None,
        *,
        activate: bool = True,
        move: bool = False,
        check: Callable[[Path], object] | None = None,
    ) -> str:
        """Add the artifact at ``artifact`` as a new immutable version; return its id.

        Parameters
        ----------
        artifact : path-like
            A built artifact directory. Its checksums are verified before anything is written.
        version : str, optional
            The new id; by default the UTC time, ``YYYYMMDDTHHMMSSZ`` (with ``-2``, ``-3``... on
            a clash). An existing id is refused: versions are immutable.
        activate : bool
            Point ``CURRENT`` at the new version (default). With False the version is only
            staged; ``activate`` it later.
        move : bool
            Move the artifact directory instead of copying it (same file system only).
        check : callable(path), optional
            Run on the verified copy before it becomes visible (e.g. a canary check); an
            exception from it aborts the publish and leaves the root as it was.

        Raises
        ------
        ArtifactError
            The artifact is missing or corrupt, or the id exists.
        InvalidArgumentError
            ``version`` is not a valid id.
        """
        source = Path(artifact)
        if version is not None:
            check_version_id(version)
        verify_artifact(source)  # refuse a corrupt source before touching the root
        (self.path / VERSIONS).mkdir(parents=True, exist_ok=True)
        with self._locked():
            vid = version or self._fresh_id()
            target = self.path / VERSIONS / vid
            if target.exists():
                raise ArtifactError(
                    f"version {vid!r} already exists in {self.path}; versions are immutable"
                )
            staging = Path(tempfile.mkdtemp(prefix=f".staging-{vid}-", dir=self.path))
            staged = staging / "artifact"
            try:
                if move:
                    os.rename(source, staged)
                else:
                    shutil.copytree(source, staged)
                fsync_tree(staged)
                verify_artifact(staged)  # the copy, byte for byte, is what will be served
                if check is not None:
                    check(staged)
                os.utime(staged)  # its mtime is the publish time (copytree kept the source's)
                os.rename(staged, target)
                fsync_dir(target.parent)
            except BaseException:
                if move and staged.exists() and not source.exists():
                    os.rename(staged, source)  # give the caller's artifact back
                shutil.rmtree(staging, ignore_errors=True)
                raise
            shutil.rmtree(staging, ignore_errors=True)
            log.info("published version %s in %s", vid, self.path)
            if activate:
                self._set_current(vid, action="publish")
            else:
                history = self.history()
                _append_log(history, "stage", vid, self.current())
                self._write_history(history)
        return vid

    def activate(self, version: str) -> str | None:
        """Point ``CURRENT`` at an existing ``version``; return the id it pointed at before."""
        self.path_of(version)
        with self._locked():
            return self._set_current(version, action="activate")

    def rollback(self) -> str:
        """Point ``CURRENT`` back at the version that was current before; return its id.

        Repeated rollbacks walk further back. :class:`ArtifactError` when there is none.
        """
        with self._locked():
            current = self.current()
            history = self.history()
            previous = history["previous"]
            while previous:
                candidate = previous.pop()
                # an entry equal to CURRENT is left by a crash between the two writes
                if candidate != current and self.has(candidate):
                    history["previous"] = previous
                    _append_log(history, "rollback", candidate, current)
                    self._write_history(history)
                    self._write_pointer(candidate)
                    log.info("rolled back %s from %s to %s", self.path, current, candidate)
                    return candidate
            raise ArtifactError(f"{self.path}: no earlier version to roll back to")

    # -- internals -------------------------------------------------------------------------
    def _set_current(self, version: str, *, action: str) -> str | None:
        before = self.current()
        if before == version:
            return before
        history = self.history()
        if before is not None:
            history["previous"].append(before)
        _append_log(history, action, version, before)
        # history first: a crash between the writes leaves an extra entry that rollback skips,
        # never a pointer without the way back
        self._write_history(history)
        self._write_pointer(version)
        log.info("%s now points at %s (was %s)", self.path / POINTER, version, before)
        return before

    def _write_pointer(self, version: str) -> None:
        atomic_write_text(self.path / POINTER, version + "\n")

    def _write_history(self, history: dict[str, Any]) -> None:
        history["log"] = history["log"][-_LOG_LIMIT:]
        atomic_write_text(self.path / HISTORY, json.dumps(history, indent=1) + "\n")

    def _fresh_id(self) -> str:
        base = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        vid, n = base, 1
        while (self.path / VERSIONS / vid).exists():
            n += 1
            vid = f"{base}-{n}"
        return vid

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise writers (two publishes at once); readers never lock."""
        if not self.path.is_dir():
            raise ArtifactError(f"{self.path}: not a version root (publish creates one)")
        try:
            import fcntl
        except ImportError:  # not POSIX: one writer at a time is then the operator's job
            yield
            return
        with open(self.path / _LOCK, "a+") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)


class SingleArtifact:
    """One artifact directory served as the only version (no pointer, no swaps)."""

    mode = "artifact"

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", self.path.resolve().name).lstrip(".")
        self.version = name[:64] or "artifact"

    def __repr__(self) -> str:
        return f"SingleArtifact({str(self.path)!r})"

    def current(self) -> str:
        return self.version

    def ids(self) -> list[str]:
        return [self.version]

    def has(self, version: str) -> bool:
        return version == self.version

    def path_of(self, version: str) -> Path:
        check_version_id(version)
        if version != self.version:
            raise UnknownVersionError(
                f"no version {version!r}: serving the single artifact {self.version!r}"
            )
        return self.path


VersionSource = VersionRoot | SingleArtifact


def open_target(path: str | os.PathLike) -> VersionSource:
    """What ``embrecall serve TARGET`` serves: one artifact, or a root of versions.

    Raises
    ------
    ArtifactError
        ``path`` is neither an artifact directory (with a manifest) nor a version root.
    """
    p = Path(path)
    if (p / MANIFEST).is_file():
        return SingleArtifact(p)
    if VersionRoot.looks_like_root(p):
        return VersionRoot(p)
    raise ArtifactError(
        f"{p}: neither an artifact (no {MANIFEST}) nor a version root (no {VERSIONS}/ or {POINTER})"
    )


def _append_log(history: dict[str, Any], action: str, version: str, before: str | None) -> None:
    history["log"].append(
        {
            "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "action": action,
            "version": version,
            "previous": before,
        }
    )


def _is_version_id(name: str) -> bool:
    return bool(_VERSION_ID.fullmatch(name)) and not name.startswith(".")
