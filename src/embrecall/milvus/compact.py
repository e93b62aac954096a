"""``embrecall compact`` on a Milvus target: the served version and its live changes folded into
a new version, published through the normal canary-checked Milvus publish.

Milvus holds live changes natively, so answers do not need this; what it buys is a version
whose rows are dense again (no rows above 2**62, no deleted placeholders) and an empty change
collection, so a process that loads it replays nothing. The new manifest records what it
folded (``folded``: the old version and the newest record key folded), so the servers carry
over the changes acknowledged while it was being built, as a compacted root version's ``.base``
makes them do (from the look-back before that key: re-carrying a folded change is a no-op, as
each id is carried as the old version's entity holds it).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping
from typing import Any

from embrecall.live.fold import compacted, rebuild
from embrecall.milvus.versions import MilvusVersions, prefix_from_env


def compact(
    target: str,
    *,
    version: str | None = None,
    check=None,
    canary_floor: Mapping[str, Any] | None = None,
    progress: bool | None = None,
) -> dict[str, Any]:
    """Fold the current version of ``target`` and its live changes into a new version.

    ``check(rec, version)`` and ``canary_floor``: what :meth:`MilvusVersions.publish` checks
    the new version with.
    """
    source = MilvusVersions(target, prefix_from_env())
    current = source.current()
    rec = source.load()
    feed = rec.live.feed
    snap = rec.live.state.snapshot
    through = feed.folded_keys()
    manifest = source.manifest(current)
    new_rec = rebuild(rec, snap, specs=faiss_specs(rec), progress=progress)
    scratch = tempfile.mkdtemp(prefix="embrecall-compact-")
    try:
        new_rec.save(f"{scratch}/artifact")
        placement = manifest.get("placement") or {}
        published = source.publish(
            f"{scratch}/artifact",
            version,
            check=check,
            canary_floor=dict(canary_floor) if canary_floor else None,
            index=_milvus_kind(manifest),
            shards=placement.get("shards"),
            replicas=placement.get("replicas"),
            folded={"from": current, "through": through},
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return compacted(published, current, snap, new_rec)


def faiss_specs(rec) -> dict[str, str]:
    """Query kind -> the faiss spec its Milvus index was published from (``auto`` when not
    known): what a rebuild over the changed data builds."""
    return {
        name: rec.indexes[kind.index_name].notes.get("choice", {}).get("from_faiss", "auto")
        for name, kind in rec.query_kinds.items()
    }


def _milvus_kind(manifest: Mapping[str, Any]) -> str:
    """The ``--milvus-index`` that gives the new version the old one's index kinds."""
    kinds = {i["kind"] for i in manifest["indexes"].values()}
    auto = all(i["kind"] == ("FLAT" if _exact(i) else "HNSW") for i in manifest["indexes"].values())
    if auto or len(kinds) != 1:
        return "auto"
    return kinds.pop()


def _exact(index: Mapping[str, Any]) -> bool:
    spec = str(index.get("choice", {}).get("from_faiss", ""))
    return spec.split(",")[-1].strip() == "Flat"
