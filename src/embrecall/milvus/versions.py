"""`MilvusVersions`: versions of a recommender in a Milvus database, with the same verbs as a
version root (``current``, ``ids``, ``versions``, ``publish``, ``activate``, ``rollback``).

The pointer is the alias ``P__items``: the version whose items collection it names is current.
Moving one alias is atomic in Milvus, so a reader sees the old version or the new one. A reader
resolves the alias once and then reads that version's own collections by name (never the
other aliases), so it cannot mix two versions. ``P__users`` is moved too, first, for tools that
read Milvus directly.

Publishing writes every collection under its versioned name, checks the canary on the version as
read back from Milvus, marks the manifest ``published``, writes the history, and only then moves
the aliases. A publish killed at any point leaves the aliases where they were; the next publish
drops what the killed one left (versions whose manifest never reached ``published``, and
collections of ours with no manifest). One publisher at a time is assumed (there is no lock
across machines).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from embrecall.errors import ArtifactError
from embrecall.milvus import store
from embrecall.milvus.target import (
    DEFAULT_PREFIX,
    MilvusTarget,
    MilvusUnavailableError,
    check_prefix,
    connect,
)
from embrecall.versions import ActivationRefusedError, UnknownVersionError, check_version_id

if TYPE_CHECKING:
    from embrecall.recommender import Recommender

log = logging.getLogger("embrecall")

HISTORY_KEY = "history"
PREFIX_ENV = "EMBRECALL_MILVUS_PREFIX"
_LOG_LIMIT = 1000
Check = Callable[["Recommender", str], object]


def _manifest_key(version: str) -> str:
    return f"version:{version}"


class MilvusVersions:
    """Versions stored in one Milvus database under one collection prefix.

    Parameters
    ----------
    target : str
        ``milvus://HOST:PORT[/DB]`` or ``milvus-lite:PATH.db``.
    prefix : str
        Starts every collection and alias name (default ``embrecall``).
    """

    mode = "milvus"

    def __init__(self, target: str, prefix: str = DEFAULT_PREFIX) -> None:
        self.target = MilvusTarget.parse(target)
        self.prefix = check_prefix(prefix)
        self.path = target  # what log lines and /v1/info name
        self._client: Any = None
        self._create = False  # only a publish may create a Milvus Lite database

    def __repr__(self) -> str:
        return f"MilvusVersions({self.target.text!r}, prefix={self.prefix!r})"

    @property
    def client(self) -> Any:
        if self._client is None:
            client = connect(self.target, create=self._create)
            meta = store.meta_name(self.prefix)
            # A collection is searchable once loaded; a Milvus Lite file opens with all of them
            # released (a cluster keeps them loaded, and a second load is a no-op there).
            if store.guarded("listing collections", client.has_collection, meta):
                store.ensure_loaded(client, meta)
            self._client = client
        return self._client

    # -- reading ---------------------------------------------------------------------------
    def current(self) -> str | None:
        """The version the items alias names, or None when nothing was published."""
        alias = store.alias_name(self.prefix, "items")
        aliases = store.guarded("listing aliases", self.client.list_aliases)
        if alias not in (aliases.get("aliases") or []):
            return None
        described = store.guarded(f"reading alias {alias}", self.client.describe_alias, alias)
        return store.version_of(self.prefix, described["collection_name"])

    def manifests(self) -> dict[str, dict[str, Any]]:
        """version -> manifest, of every version with a manifest (published or not)."""
        rows = store.read_meta(self.client, self.prefix)
        return {
            key.split(":", 1)[1]: value for key, value in rows.items() if key.startswith("version:")
        }

    def manifest(self, version: str) -> dict[str, Any]:
        check_version_id(version)
        key = _manifest_key(version)
        found = store.read_meta(self.client, self.prefix, [key]).get(key)
        if found is None or found.get("state") != "published":
            raise UnknownVersionError(f"{self.target.text}: no version {version!r}")
        return found

    def ids(self) -> list[str]:
        published = [
            (m.get("published_at") or "", v)
            for v, m in self.manifests().items()
            if m.get("state") == "published"
        ]
        return [v for _, v in sorted(published)]

    def has(self, version: str) -> bool:
        return version in self.ids()

    def versions(self) -> list[dict[str, Any]]:
        current = self.current()
        out = []
        for version, m in sorted(
            self.manifests().items(), key=lambda item: item[1].get("published_at") or ""
        ):
            if m.get("state") != "published":
                continue
            out.append(
                {
                    "id": version,
                    "created_at": m.get("created_at"),
                    "published_at": m.get("published_at"),
                    "items": m["spaces"]["items"]["count"],
                    "indexes": {n: i["kind"] for n, i in m["indexes"].items()},
                    "current": version == current,
                }
            )
        return out

    def history(self) -> dict[str, Any]:
        current = self.current()
        stored = store.read_meta(self.client, self.prefix, [HISTORY_KEY]).get(HISTORY_KEY) or {}
        published = set(self.ids())  # --keep may have dropped versions the stack names
        previous = [v for v in _reconciled(stored, current) if v in published]
        return {"previous": previous, "log": stored.get("log", [])}

    def rollback_target(self) -> str | None:
        previous = self.history()["previous"]
        return previous[-1] if previous else None

    def canary_floor(self, version: str) -> dict[str, Any] | None:
        try:
            return self.manifest(version).get("canary_floor")
        except UnknownVersionError:
            return None

    def leftovers(self) -> list[str]:
        """Collections left by killed publishes (the next publish drops them)."""
        manifests = self.manifests()
        names = store.guarded("listing collections", self.client.list_collections)
        out = []
        for name in names:
            version = store.version_of(self.prefix, name)
            if version is None:
                continue
            if manifests.get(version, {}).get("state") != "published":
                out.append(name)
        return sorted(out)

    def load_version(self, version: str, predecessor: str | None = None) -> Recommender:
        """The served form of ``version``: a Recommender whose indexes search Milvus, with the
        version's live changes applied (``rec.live.feed``; embrecall.milvus.live), and those
        ``predecessor`` took after ``version`` was built carried over."""
        from embrecall.milvus.live import load_live

        manifest = self.manifest(version)
        return load_live(
            self.client, self.prefix, version, manifest, predecessor, flush=self.target.lite
        )

    def load(self) -> Recommender:
        """The current version (what ``embrecall.load(TARGET)`` answers), live changes applied."""
        version = self.current()
        if version is None:
            raise MilvusUnavailableError(
                f"{self.target.text}: no version published under prefix {self.prefix!r}"
            )
        return self.load_version(version, self.predecessor_of(version))

    def predecessor_of(self, version: str) -> str | None:
        """The version whose late live changes ``version`` carries when it is current: the one
        it replaced (the last of the rollback stack)."""
        if self.current() != version:
            return None
        previous = self.history()["previous"]
        return previous[-1] if previous else None

    # -- writing ---------------------------------------------------------------------------
    def publish(
        self,
        artifact: str,
        version: str | None = None,
        *,
        activate: bool = True,
        check: Check | None = None,
        canary_floor: dict[str, Any] | None = None,
        keep: int | None = None,
        index: str = "auto",
        shards: int | None = None,
        replicas: int | None = None,
        after_write: Callable[[], None] | None = None,
        folded: dict[str, Any] | None = None,
    ) -> str:
        """Write the artifact at ``artifact`` as ``version`` and (by default) make it current.

        ``check(rec, version)`` runs on the version as read back from Milvus and raises to
        refuse it (the canary). ``keep``: drop all but the newest ``keep`` published versions
        afterwards (the current one is always kept). ``shards`` / ``replicas``: how Milvus spreads
        each collection's writes and how many in-memory copies serve it (None: the server's
        defaults). ``folded``: what a compaction folded into the artifact (``{"from": version,
        "through": newest change key}``; embrecall.milvus.compact). ``after_write`` is called once
        the
        collections are written, before anything is marked (tests kill a publish there).
        """
        from embrecall.artifact import load_artifact

        version = check_version_id(version or _fresh_id())
        if keep is not None and keep < 1:
            raise ArtifactError(f"--keep must be at least 1, got {keep}")
        rec = load_artifact(artifact, verify=True)
        self._create = True
        client = self.client
        store.ensure_meta(client, self.prefix)
        self._clean()
        if version in self.manifests():
            raise ArtifactError(f"{self.target.text}: version {version!r} already exists")
        key = _manifest_key(version)
        store.write_meta(client, self.prefix, key, {"state": "writing", "version": version})
        from embrecall.milvus.publish import write_version

        placement = {"shards": shards, "replicas": replicas}
        manifest = write_version(client, self.prefix, version, rec, index, placement)
        manifest["canary_floor"] = canary_floor
        manifest["artifact"] = str(artifact)
        if folded is not None:
            manifest["folded"] = folded
        store.write_meta(client, self.prefix, key, manifest)
        if after_write is not None:
            after_write()
        if check is not None:
            try:
                check(store.load_version(client, self.prefix, version, manifest), version)
            except Exception:
                self._drop_version(version)
                raise
        manifest["state"] = "published"
        manifest["published_at"] = _now()
        store.write_meta(client, self.prefix, key, manifest)
        if activate:
            self._move(version, action="publish")
        if keep is not None:
            self._drop_old(keep)
        return version

    def activate(self, version: str, *, check: Check | None = None) -> str | None:
        """Point the aliases at ``version`` (checked first); return the version before."""
        manifest = self.manifest(version)
        if check is not None:
            self._vet(version, manifest, check)
        return self._move(version, action="activate")

    def rollback(self, *, check: Check | None = None) -> str:
        """Point the aliases back at the version current before this one."""
        target = self.rollback_target()
        if target is None:
            raise ActivationRefusedError(f"{self.target.text}: no earlier version to roll back to")
        manifest = self.manifest(target)
        if check is not None:
            self._vet(target, manifest, check)
        self._move(target, action="rollback")
        return target

    def _vet(self, version: str, manifest: dict, check: Check) -> None:
        from embrecall.milvus.live import load_live

        try:
            rec = load_live(self.client, self.prefix, version, manifest, flush=self.target.lite)
            rec.live = None  # the canary checks the index against its own rows
            check(rec, version)
        except ArtifactError as exc:
            raise ActivationRefusedError(f"version {version} refused: {exc}") from None

    def _move(self, version: str, *, action: str) -> str | None:
        client = self.client
        before = self.current()
        stored = store.read_meta(client, self.prefix, [HISTORY_KEY]).get(HISTORY_KEY) or {}
        published = set(self.ids())
        previous = [v for v in _reconciled(stored, before) if v in published]
        if action == "rollback":
            while previous and previous[-1] == version:
                previous.pop()
        elif before is not None and before != version:
            previous.append(before)
        events = list(stored.get("log", []))[-_LOG_LIMIT:]
        events.append({"at": _now(), "action": action, "version": version, "previous": before})
        # The history first, naming the state before the move too: whichever of the two writes
        # a crash lets through, reading it against the alias gives the right stack.
        store.write_meta(
            client,
            self.prefix,
            HISTORY_KEY,
            {
                "current": version,
                "previous": previous,
                "before": {"current": before, "previous": _reconciled(stored, before)},
                "log": events,
            },
        )
        manifest = self.manifest(version)
        spaces = [s for s in ("users", "items") if s in manifest["spaces"]]  # items last: commit
        for space in spaces:
            alias = store.alias_name(self.prefix, space)
            collection = manifest["spaces"][space]["collection"]
            existing = store.guarded("listing aliases", client.list_aliases).get("aliases") or []
            if alias in existing:
                store.guarded(f"moving {alias}", client.alter_alias, collection, alias)
            else:
                store.guarded(f"creating {alias}", client.create_alias, collection, alias)
        log.info("%s: current is %s (was %s)", self.target.text, version, before)
        return before

    def _drop_old(self, keep: int) -> None:
        current = self.current()
        ids = self.ids()
        doomed = [v for v in ids[: max(0, len(ids) - keep)] if v != current]
        for version in doomed:
            self._drop_version(version)

    def _drop_version(self, version: str) -> None:
        for name in store.guarded("listing collections", self.client.list_collections):
            if store.version_of(self.prefix, name) == version:
                store.guarded(f"dropping {name}", self.client.drop_collection, name)
        store.delete_meta(self.client, self.prefix, _manifest_key(version))

    def _clean(self) -> None:
        """Drop what killed publishes left: unpublished versions and collections without one."""
        manifests = self.manifests()
        for version, m in manifests.items():
            if m.get("state") != "published":
                log.info("dropping version %s left by a killed publish", version)
                self._drop_version(version)
        for name in self.leftovers():
            store.guarded(f"dropping {name}", self.client.drop_collection, name)


def prefix_from_env() -> str:
    """The collection prefix readers use: ``EMBRECALL_MILVUS_PREFIX``, else ``embrecall``."""
    return os.environ.get(PREFIX_ENV) or DEFAULT_PREFIX


def _reconciled(stored: dict, current: str | None) -> list[str]:
    if not stored:
        return []
    if stored.get("current") == current:
        previous = list(stored.get("previous", []))
    elif (stored.get("before") or {}).get("current") == current:
        previous = list(stored["before"].get("previous", []))
    else:
        previous = []
    while previous and previous[-1] == current:
        previous.pop()
    return previous


def _fresh_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")
