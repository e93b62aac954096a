"""A root of immutable artifact versions and a pointer to the current one.

Layout::

    ROOT/
      versions/<id>/     one artifact directory per version; never changed once published
      meta/<id>.json     what publish checked the version with (its canary floor)
      CURRENT            the id of the version to serve, one line; replaced atomically
      HISTORY            JSON: the stack of earlier current versions (for rollback) and a log
      .lock              taken while publishing or moving the pointer
      .staging-<id>-*/   a publish in progress (removed by the next publish when its owner died)

A version id matches ``[A-Za-z0-9_.-]{1,64}`` and does not start with a dot (dot names are the
staging directories of publishes in progress), so an id is never a path. Publishing copies the
artifact into a staging directory inside ROOT, verifies the copy's checksums and renames it into
``versions/`` (one atomic ``rename`` on one file system), then replaces ``CURRENT`` by
write-temp + ``os.replace``: a reader sees the old version or the new one, never half of one.

Moving the pointer writes ``HISTORY`` first and ``CURRENT`` second. ``HISTORY`` names the current
version its stack belongs to and keeps the state before the move, so reading it against
``CURRENT`` gives the right stack whichever of the two writes a crash let through. Every writer
holds ``.lock``, so whatever a writer finds in staging was left by a killed one: it is removed,
and a source that a killed ``publish --move`` had taken is put back first. Activation and
rollback verify the target (checksums, and the caller's check) before the pointer moves.

This module knows the layout of a root; the layout of one artifact is ``embrecall.artifact``'s.
Nothing here imports faiss or the HTTP stack, so the CLI's publish and rollback stay light.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from embrecall._durable import atomic_write_text, exclusive_lock, fsync_dir, fsync_tree, is_locked
from embrecall.artifact import MANIFEST, check_regular_tree, read_manifest, verify_artifact
from embrecall.errors import ArtifactError, EmbrecallError, InvalidArgumentError

log = logging.getLogger("embrecall")

VERSION_ID_PATTERN = r"[A-Za-z0-9_.-]{1,64}"
_VERSION_ID = re.compile(VERSION_ID_PATTERN)
POINTER = "CURRENT"
HISTORY = "HISTORY"
VERSIONS = "versions"
META = "meta"
_LOCK = ".lock"
_STAGING = ".staging-"
_MOVED_FROM = "moved-from.json"  # in a staging dir: where a --move took the artifact from
_TEMP_FILE = re.compile(r"\.(CURRENT|HISTORY|.+\.json)\.\d+\.tmp")  # of atomic_write_text
_LOG_LIMIT = 1000  # HISTORY keeps the last entries only; it is read on every `versions` call

Check = Callable[[Path], object]


class UnknownVersionError(ArtifactError):
    """A version id that the root does not hold."""


class ActivationRefusedError(ArtifactError):
    """A version failed verification or its check, so the pointer stayed where it was."""


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
        """``{"previous": [older current ids, most recent last], "log": [events]}``.

        Read against ``CURRENT``: after a crash between the two writes of a pointer move, the
        stack and log are those of the state ``CURRENT`` names.
        """
        previous, events = self._reconciled(self.current())
        return {"previous": previous, "log": events}

    def rollback_target(self) -> str | None:
        """The version :meth:`rollback` would go to now, or None when there is none."""
        current = self.current()
        return self._pop_target(self._reconciled(current)[0], current)[0]

    def canary_floor(self, version: str) -> dict[str, Any] | None:
        """The canary settings (``min_recall``, ``queries``, ``k``) ``version`` was published
        with, or None when it was published without a check (or before they were recorded)."""
        check_version_id(version)
        try:
            data = json.loads((self.path / META / f"{version}.json").read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise ArtifactError(f"{self.path / META / version}.json: unreadable ({exc})") from None
        canary = data.get("canary") if isinstance(data, dict) else None
        return dict(canary) if isinstance(canary, dict) else None

    def leftovers(self) -> list[Path]:
        """Staging folders and temporary files left by killed writers (the next publish removes
        them); empty while a writer holds the root, whose staging is then live."""
        if not self.path.is_dir() or is_locked(self.path / _LOCK):
            return []
        return self._leftovers()

    # -- writing ---------------------------------------------------------------------------
    def publish(
        self,
        artifact: str | os.PathLike,
        version: str | None = None,
        *,
        activate: bool = True,
        move: bool = False,
        check: Check | None = None,
        canary_floor: Mapping[str, Any] | None = None,
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
            Move the artifact directory instead of copying it. On one file system it is renamed
            (and put back if the process dies before it is published); across file systems it
            is copied and the source deleted once the copy is published.
        check : callable(path), optional
            Run on the verified copy before it becomes visible (e.g. a canary check); an
            exception from it aborts the publish and leaves the root as it was.
        canary_floor : mapping, optional
            The settings ``check`` applied (``min_recall``, ``queries``, ``k``), kept for
            :meth:`canary_floor` so that a later rollback or server checks with the same floor.

        Raises
        ------
        ArtifactError
            The artifact is missing or corrupt, holds a symbolic link, or the id exists.
        InvalidArgumentError
            ``version`` is not a valid id.
        """
        source = Path(artifact)
        if version is not None:
            check_version_id(version)
        if move and source.is_symlink():
            raise ArtifactError(f"{source}: a symbolic link; --move takes the directory itself")
        if self.path.is_dir() and not os.path.lexists(source):
            with self._locked():
                pass  # a killed publish --move of it is put back by the clean-up
        verify_artifact(source)  # refuse a corrupt source before touching the root
        (self.path / VERSIONS).mkdir(parents=True, exist_ok=True)
        with self._locked():
            vid = version or self._fresh_id()
            target = self.path / VERSIONS / vid
            if target.exists():
                raise ArtifactError(
                    f"version {vid!r} already exists in {self.path}; versions are immutable"
                )
            staging = Path(tempfile.mkdtemp(prefix=f"{_STAGING}{vid}-", dir=self.path))
            staged = staging / "artifact"
            renamed = False
            try:
                if move:
                    renamed = _move_into(source, staged)
                else:
                    shutil.copytree(source, staged, symlinks=True)  # a link stays a link...
                fsync_tree(staged)
                verify_artifact(staged)  # ...and is refused here, as is any altered byte
                if check is not None:
                    check(staged)
                self._write_meta(vid, canary_floor)
                os.utime(staged)  # its mtime is the publish time (copytree kept the source's)
                os.rename(staged, target)
                fsync_dir(target.parent)
            except BaseException:
                if renamed and staged.exists() and not os.path.lexists(source):
                    os.rename(staged, source)  # give the caller's artifact back
                shutil.rmtree(staging, ignore_errors=True)
                raise
            shutil.rmtree(staging, ignore_errors=True)
            if move and not renamed:
                shutil.rmtree(source)  # copied across file systems: published, so it may go
            log.info("published version %s in %s", vid, self.path)
            if activate:
                self._set_current(vid, action="publish")
            else:
                current = self.current()
                previous, events = self._reconciled(current)
                _append_log(events, "stage", vid, current)
                self._write_history(current, previous, events, before=None)
        return vid

    def activate(self, version: str, *, check: Check | None = None) -> str | None:
        """Point ``CURRENT`` at an existing ``version``; return the id it pointed at before.

        The version's checksums are verified and ``check(path)`` is run first (the canary
        publish runs, say); :class:`ActivationRefusedError` when either fails, and then
        neither ``CURRENT`` nor ``HISTORY`` changes.
        """
        self.path_of(version)
        with self._locked():
            current = self.current()
            if current == version:
                return current
            self._vet(version, current, check, "activation")
            return self._set_current(version, action="activate")

    def rollback(self, *, check: Check | None = None) -> str:
        """Point ``CURRENT`` back at the version that was current before; return its id.

        Repeated rollbacks walk further back. The target is verified and checked as
        :meth:`activate` does; :class:`ActivationRefusedError` when it fails, and
        :class:`ArtifactError` when there is no earlier version. Either way nothing changes.
        """
        with self._locked():
            current = self.current()
            previous, events = self._reconciled(current)
            target, rest = self._pop_target(previous, current)
            if target is None:
                raise ArtifactError(f"{self.path}: no earlier version to roll back to")
            self._vet(target, current, check, "rollback")
            _append_log(events, "rollback", target, current)
            self._write_history(
                target, rest, events, before={"current": current, "previous": previous}
            )
            self._write_pointer(target)
            log.info("rolled back %s from %s to %s", self.path, current, target)
            return target

    # -- internals -------------------------------------------------------------------------
    def _set_current(self, version: str, *, action: str) -> str | None:
        before = self.current()
        if before == version:
            return before
        previous, events = self._reconciled(before)
        _append_log(events, action, version, before)
        after = [*previous, before] if before is not None else previous
        # history first, naming the state before: a crash between the writes is then read
        # as that state (see _reconciled), never as a pointer without the way back
        self._write_history(
            version, after, events, before={"current": before, "previous": previous}
        )
        self._write_pointer(version)
        log.info("%s now points at %s (was %s)", self.path / POINTER, version, before)
        return before

    def _vet(self, version: str, current: str | None, check: Check | None, what: str) -> None:
        path = self.path_of(version)
        try:
            verify_artifact(path)
            if check is not None:
                check(path)
        except EmbrecallError as exc:
            raise ActivationRefusedError(
                f"{what} of {version} refused ({POINTER} stays {current}): {exc}"
            ) from None

    def _pop_target(self, previous: list[str], current: str | None) -> tuple[str | None, list[str]]:
        """The last entry of ``previous`` that is not ``current`` and still exists, and what
        stays below it."""
        rest = list(previous)
        while rest:
            candidate = rest.pop()
            if candidate != current and self.has(candidate):
                return candidate, rest
        return None, []

    def _read_history(self) -> dict[str, Any]:
        try:
            data = json.loads((self.path / HISTORY).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {"current": None, "previous": [], "before": None, "log": []}
        except (OSError, ValueError) as exc:
            raise ArtifactError(f"{self.path / HISTORY}: unreadable ({exc})") from None
        if not isinstance(data, dict) or not _is_id_list(data.get("previous", [])):
            raise ArtifactError(f"{self.path / HISTORY}: not a JSON object with a previous list")
        return data

    def _reconciled(self, current: str | None) -> tuple[list[str], list[dict]]:
        """The rollback stack and the log of the state in which ``CURRENT`` is ``current``."""
        data = self._read_history()
        previous = list(data.get("previous", []))
        events = list(data.get("log", []))
        if "current" not in data:
            # written before HISTORY named its state: an entry equal to CURRENT can only be
            # left by a crash between the writes
            return _strip(previous, current), events
        if data["current"] == current:
            return previous, events
        before = data.get("before")
        if isinstance(before, dict) and before.get("current") == current:
            # the pointer write of the last move never happened: the move is void
            stack = before.get("previous", [])
            if not _is_id_list(stack):
                raise ArtifactError(f"{self.path / HISTORY}: before.previous is not a list")
            return list(stack), events[:-1]
        # CURRENT was set by hand: the version HISTORY knew as current is the way back
        if data["current"] is not None:
            previous.append(data["current"])
        return _strip(previous, current), events

    def _write_pointer(self, version: str) -> None:
        atomic_write_text(self.path / POINTER, version + "\n")

    def _write_history(
        self,
        current: str | None,
        previous: list[str],
        events: list[dict],
        *,
        before: dict[str, Any] | None,
    ) -> None:
        data = {
            "current": current,
            "previous": previous,
            "before": before,
            "log": events[-_LOG_LIMIT:],
        }
        atomic_write_text(self.path / HISTORY, json.dumps(data, indent=1) + "\n")

    def _write_meta(self, version: str, canary_floor: Mapping[str, Any] | None) -> None:
        # outside the version's directory, which stays byte for byte what was built; always
        # written, so that a stale file of a failed publish of the same id never speaks for it
        (self.path / META).mkdir(exist_ok=True)
        floor = dict(canary_floor) if canary_floor is not None else None
        atomic_write_text(self.path / META / f"{version}.json", json.dumps({"canary": floor}))

    def _leftovers(self) -> list[Path]:
        found = [p for p in self.path.iterdir() if p.name.startswith(_STAGING)]
        found += [p for p in self.path.iterdir() if _TEMP_FILE.fullmatch(p.name)]
        if (self.path / META).is_dir():
            found += [p for p in (self.path / META).iterdir() if _TEMP_FILE.fullmatch(p.name)]
        return sorted(found)

    def _clean(self) -> None:
        """Remove what killed writers left; only under the lock, so none of it is live."""
        for path in self._leftovers():
            if path.name.startswith(_STAGING) and not _give_back(path):
                continue
            log.info("removing %s, left by a killed publish", path)
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)

    def _fresh_id(self) -> str:
        base = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        vid, n = base, 1
        while (self.path / VERSIONS / vid).exists():
            n += 1
            vid = f"{base}-{n}"
        return vid

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise writers (two publishes at once) and clean up after killed ones; readers
        never lock."""
        if not self.path.is_dir():
            raise ArtifactError(f"{self.path}: not a version root (publish creates one)")
        with exclusive_lock(self.path / _LOCK):
            self._clean()
            yield


def _move_into(source: Path, staged: Path) -> bool:
    """Move ``source`` to ``staged``; True when renamed, False when copied (another file system).

    The source's path is written down in the staging folder before the rename, so that the next
    writer puts it back if this process dies before the version is published.
    """
    marker = staged.parent / _MOVED_FROM
    atomic_write_text(marker, json.dumps({"source": str(source.absolute())}))
    try:
        os.rename(source, staged)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        marker.unlink()  # the source stays where it is until the copy is published
        check_regular_tree(source)
        shutil.copytree(source, staged, symlinks=True)
        return False
    fsync_dir(source.parent)
    return True


def _give_back(staging: Path) -> bool:
    """Put a source that a killed ``publish --move`` had taken back at its path; False when
    that cannot be done (the staging folder must then stay, as the only copy)."""
    marker = staging / _MOVED_FROM
    staged = staging / "artifact"
    if not marker.is_file() or not staged.is_dir():
        return True  # a copy, or already published: nothing of the caller's is inside
    try:
        source = Path(json.loads(marker.read_text(encoding="utf-8"))["source"])
        if os.path.lexists(source):
            # something new is at the source's path: keep the taken one rather than guess
            raise OSError(errno.EEXIST, f"{source} exists again")
        os.rename(staged, source)
        fsync_dir(source.parent)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("%s holds a moved artifact that could not be put back (%s)", staging, exc)
        return False
    log.warning("put %s back, taken by a killed publish --move", source)
    return True


def _strip(previous: list[str], current: str | None) -> list[str]:
    while previous and previous[-1] == current:
        previous.pop()
    return previous


def _is_id_list(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


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


VersionSource = VersionRoot | SingleArtifact  # or embrecall.milvus.versions.MilvusVersions


def open_target(path: str | os.PathLike) -> VersionSource:
    """What ``embrecall serve TARGET`` serves: one artifact, a root of versions, or a Milvus
    target (``milvus://...``, ``milvus-lite:...``; see :mod:`embrecall.milvus`).

    Raises
    ------
    ArtifactError
        ``path`` is neither an artifact directory (with a manifest) nor a version root.
    """
    if isinstance(path, str) and path.startswith(("milvus://", "milvus-lite:")):
        from embrecall.milvus.versions import MilvusVersions, prefix_from_env

        return MilvusVersions(path, prefix_from_env())
    p = Path(path)
    if (p / MANIFEST).is_file():
        return SingleArtifact(p)
    if VersionRoot.looks_like_root(p):
        return VersionRoot(p)
    raise ArtifactError(
        f"{p}: neither an artifact (no {MANIFEST}) nor a version root (no {VERSIONS}/ or {POINTER})"
    )


def _append_log(events: list[dict], action: str, version: str, before: str | None) -> None:
    events.append(
        {
            "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "action": action,
            "version": version,
            "previous": before,
        }
    )


def _is_version_id(name: str) -> bool:
    return bool(_VERSION_ID.fullmatch(name)) and not name.startswith(".")
