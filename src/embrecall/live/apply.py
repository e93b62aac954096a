"""``embrecall update`` and ``embrecall compact``: bulk changes to a version root (or a Milvus
target, whose changes Milvus holds natively: :mod:`embrecall.milvus.live`), and folding them into
a new version.

``update`` reads files with the same readers and checks as ``build``, validates every change
against the current version and its pending changes, and only then appends them to the
version's change log (fsynced, in chunks, with a progress bar): bad input writes nothing.
Servers of the root pick the changes up at their next poll.

``compact`` loads the current version, applies its log, builds a new artifact from the result
with the same metrics and index choices, and publishes it through the normal verified,
canary-checked publish. The new version records how much of the old log it folded, so changes
acknowledged while it was being built are carried over by the servers, not lost.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from embrecall._durable import atomic_write_text
from embrecall._progress import bar_disabled
from embrecall.artifact import load_artifact
from embrecall.catalog import Catalog
from embrecall.embeddings import Embeddings
from embrecall.errors import ArtifactError, InvalidArgumentError, UnknownIdError
from embrecall.interactions import Interactions
from embrecall.live import changes
from embrecall.live.changelog import ChangeLog, Record
from embrecall.live.fold import compacted, rebuild
from embrecall.live.overlay import LiveOverlay
from embrecall.versions import VersionRoot

log = logging.getLogger("embrecall")

CHUNK = 1000  # records per fsync: one fsync per record would make bulk loads crawl


def open_root(target: str | os.PathLike) -> tuple[VersionRoot, str]:
    """The version root at ``target`` and its current version; refused for anything else."""
    root = VersionRoot(target)
    if not VersionRoot.looks_like_root(root.path):
        raise ArtifactError(
            f"{root.path}: not a version root; live changes belong to a root's versions "
            "(publish the artifact into one)"
        )
    version = root.current()
    if version is None:
        raise ArtifactError(f"{root.path}: no current version to change")
    return root, version


def load_with_changes(root: VersionRoot, version: str, verify: bool = False):
    """The version loaded with its change log applied: (recommender, log, offset folded)."""
    rec = load_artifact(root.path_of(version), verify=verify)
    changelog = ChangeLog.of(root.path, version)
    records, offset = changelog.read(0)
    rec.live = LiveOverlay(rec)
    rec.live.state.apply(records)
    return rec, changelog, offset


def update(
    target: str | os.PathLike,
    *,
    items: Embeddings | None = None,
    users: Embeddings | None = None,
    catalog: Catalog | None = None,
    delete_items: Sequence | None = None,
    delete_users: Sequence | None = None,
    seen: Interactions | None = None,
    progress: bool | None = None,
) -> dict[str, Any]:
    """Validate and append changes to the current version of ``target`` (a version root or a
    Milvus target).

    Parameters
    ----------
    items, users : Embeddings, optional
        Vectors to add or replace.
    catalog : Catalog, optional
        Fields of the upserted items (title, genres, ...).
    delete_items, delete_users : sequence of ids, optional
    seen : Interactions, optional
        (user, item) pairs just consumed.

    Returns
    -------
    ``{"version", "upserted_items", "upserted_users", "deleted_items", "deleted_users",
    "seen", "records"}``
    """
    rec, version, write = _open_for_update(target)
    live = rec.live
    records: list[Record] = []
    added: dict[str, set] = {"items": set(), "users": set()}
    for space, emb in (("items", items), ("users", users)):
        if emb is None:
            continue
        has_fields = space == "items" and catalog is not None
        metadata = catalog.records(emb.ids) if has_fields else [None] * len(emb)
        for key, vector, fields in zip(emb.ids.tolist(), emb.vectors, metadata):
            records.append(changes.upsert(rec, space, key, vector, fields or None))
            added[space].add(records[-1]["id"])
    for space, ids in (("items", delete_items), ("users", delete_users)):
        for raw in ids or ():
            key = rec.space(space, f"{space} updates").coerce_id(raw, what=f"{space[:-1]} id")
            if key in added[space]:
                records.append(_delete_record(space, key))
                added[space].discard(key)
            else:
                records.append(changes.delete(rec, live, space, key))
    n_seen = 0
    if seen is not None:
        by_user: dict = {}
        for user, item in zip(seen.users.tolist(), seen.items.tolist()):
            by_user.setdefault(user, []).append(item)
        for user, item_ids in by_user.items():
            try:
                records.append(changes.seen(rec, live, user, item_ids))
            except UnknownIdError:
                # ids upserted by this same command are held once it is applied
                _require_held(rec, live, user, item_ids, added)
                records.append(_seen_record(rec, user, item_ids))
            n_seen += len(item_ids)
    _append(write, records, progress)
    counts = {op: sum(1 for r in records if r["op"] == op) for op in ("upsert", "delete")}
    return {
        "version": version,
        "upserted_items": len(items) if items is not None else 0,
        "upserted_users": len(users) if users is not None else 0,
        "deleted_items": len(delete_items or ()),
        "deleted_users": len(delete_users or ()),
        "seen": n_seen,
        "records": len(records),
        **{f"{op}s": n for op, n in counts.items()},
    }


def _open_for_update(target: str | os.PathLike):
    """(recommender with its pending changes, version, append(records)) of a root's or a
    Milvus target's current version."""
    from embrecall.milvus import is_milvus_target

    if is_milvus_target(target):  # changes go into Milvus natively (embrecall.milvus.live)
        from embrecall.milvus.versions import MilvusVersions, prefix_from_env

        rec = MilvusVersions(str(target), prefix_from_env()).load()
        feed = rec.live.feed
        return rec, feed.version, lambda chunk: feed.write(chunk, visible=False)
    root, version = open_root(target)
    rec, changelog, _ = load_with_changes(root, version)
    return rec, version, changelog.append


def compact(
    target: str | os.PathLike,
    *,
    version: str | None = None,
    check: Callable[[Path], object] | None = None,
    canary_floor: Mapping[str, Any] | None = None,
    progress: bool | None = None,
) -> dict[str, Any]:
    """Fold the current version's changes into a new version, published through ``publish``.

    On a Milvus target: :func:`embrecall.milvus.compact.compact` (``check(rec, version)``).

    Parameters
    ----------
    version : new version id (default: ``<UTC time>``, as ``publish`` names versions)
    check, canary_floor : what ``VersionRoot.publish`` checks the new artifact with
    """
    from embrecall.milvus import is_milvus_target

    if is_milvus_target(target):  # check(rec, version), as a Milvus publish runs it
        from embrecall.milvus.compact import compact as compact_milvus

        return compact_milvus(
            str(target),
            version=version,
            check=check,
            canary_floor=canary_floor,
            progress=progress,
        )
    root, current = open_root(target)
    if version is not None and root.has(version):  # before its .base could be overwritten
        raise ArtifactError(
            f"{root.path} already has a version {version!r}; versions are immutable"
        )
    rec, _, offset = load_with_changes(root, current, verify=True)
    snap = rec.live.state.snapshot
    new_rec = rebuild(rec, snap, progress=progress)
    new_id = version or _fresh_id(root)
    base = ChangeLog.of(root.path, new_id).base_path
    base.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{root.path.name}.compact-", dir=root.path.parent))
    try:
        new_rec.save(str(scratch / "artifact"))
        # written before the publish: a server that loads the new version must know what it
        # holds of the old log from its first poll on
        atomic_write_text(base, f'{{"from": "{current}", "offset": {offset}}}\n')
        try:
            published = root.publish(
                scratch / "artifact",
                new_id,
                move=True,
                check=check,
                canary_floor=canary_floor,
            )
        except BaseException:
            base.unlink(missing_ok=True)
            raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return compacted(published, current, snap, new_rec)


def load_for_export(
    target: str | os.PathLike, *, verify: bool, exact: bool, changes: bool = True, progress=None
):
    """What offline work that reads vectors directly (batch exports) should compute from:
    ``(recommender, pending records applied)``.

    A version root's current version, or a Milvus target's, with its pending changes applied (a
    rebuild over the changed data, :func:`~embrecall.live.fold.rebuild`; ``exact``: Flat
    indexes only, nothing to train) unless ``changes`` is False. An artifact: what
    :func:`embrecall.load` gives.
    """
    from embrecall import load
    from embrecall.milvus import is_milvus_target

    specs = None
    if is_milvus_target(target):
        from embrecall.milvus.compact import faiss_specs

        rec = load(target, verify=verify)  # its changes applied, as a server loads it
        if not changes or rec.live is None or not rec.live.active:
            return rec, 0
        specs = None if exact else faiss_specs(rec)
    elif VersionRoot.looks_like_root(Path(str(target))):
        root, current = open_root(target)
        if not changes:
            return load(root.path_of(current), verify=verify), 0
        rec, _, _ = load_with_changes(root, current, verify=verify)
    else:
        return load(target, verify=verify), 0
    snap = rec.live.state.snapshot
    if not snap.applied:
        rec.live = None
        return rec, 0
    return rebuild(rec, snap, exact=exact, specs=specs, progress=progress), snap.applied


def read_ids(value: str) -> list[str]:
    """``IDS|FILE``: a file of ids, one a line (blank lines and ``#`` comments skipped), or
    comma-separated ids."""
    path = Path(value)
    if path.is_file():
        lines = path.read_text(encoding="utf-8").splitlines()
        return [s.strip() for s in lines if s.strip() and not s.lstrip().startswith("#")]
    ids = [s.strip() for s in value.split(",") if s.strip()]
    if not ids:
        raise InvalidArgumentError(f"{value!r} is neither a file nor comma-separated ids")
    return ids


def _append(
    write: Callable[[list[Record]], object], records: list[Record], progress: bool | None
) -> None:
    if not records:
        raise InvalidArgumentError("no changes given: pass --items, --users, --delete-*, --seen")
    bar = tqdm(total=len(records), desc="update", unit="change", disable=bar_disabled(progress))
    with bar:
        for start in range(0, len(records), CHUNK):
            chunk = records[start : start + CHUNK]
            write(chunk)
            bar.update(len(chunk))


def _delete_record(space: str, key) -> Record:
    import time

    return {"op": "delete", "space": space, "id": key, "at": time.time()}


def _seen_record(rec, user, item_ids) -> Record:
    import time

    items = [rec.items.coerce_id(i, what="item id") for i in item_ids]
    return {"op": "seen", "space": "users", "id": user, "items": items, "at": time.time()}


def _require_held(rec, live, user, item_ids, added) -> None:
    if user not in added["users"] and not live.holds(rec, "users", user):
        raise UnknownIdError(f"unknown user id {user!r}", [user])
    missing = [i for i in item_ids if i not in added["items"] and not live.holds(rec, "items", i)]
    if missing:
        raise UnknownIdError(f"unknown item id {missing[0]!r}", missing)


def _fresh_id(root: VersionRoot) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    candidate, n = stamp, 1
    while root.has(candidate):
        n += 1
        candidate = f"{stamp}-{n}"
    return candidate
