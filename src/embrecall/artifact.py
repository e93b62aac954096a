"""The artifact: the only module that knows the on-disk layout and its format version.

Layout (format version 1)::

    ARTIFACT/
      manifest.json            format, versions, spaces, indexes, query kinds, SHA-256 of every file
      items/ids.npy            int64, or unicode for string ids (never pickled)
      items/vectors.npy        float32 (n, d), the raw vectors (queries by id read them)
      users/ids.npy, users/vectors.npy
      indexes/<name>.faiss     one faiss index per (space, metric, spec)
      catalog.parquet          item metadata (optional)
      user_catalog.parquet     user metadata (optional)
      filters/<space>/*.npy    typed filter fields of the catalogues (see embrecall.filters)
      seen/indptr.npy, seen/item_rows.npy   CSR of the items each user has seen (optional)

Writing goes to a temporary sibling directory (``.NAME.tmp-XXXXXXXX``) that is renamed into place,
so a reader never sees a half-written artifact. A writer holds ``.NAME.lock`` beside it while it
works; the next writer of NAME removes what a killed one left (and puts back an old artifact that
was moved aside for one that never arrived). An artifact holds regular files only: symbolic links
are refused, so that copying or serving one never reaches outside it. Loading verifies sizes and
checksums before faiss reads a byte: faiss has no checksums of its own and accepts many
bit-flipped files.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import stat
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from embrecall._durable import exclusive_lock, fsync_dir
from embrecall._durable import fsync_tree as _fsync_tree  # a name tests can patch
from embrecall.embeddings import Embeddings
from embrecall.errors import ArtifactError, EmbrecallError
from embrecall.index import VectorIndex

if TYPE_CHECKING:
    from embrecall.recommender import Recommender

log = logging.getLogger("embrecall")

FORMAT = "embrecall-artifact"
FORMAT_VERSION = 2
# Version 2 adds the inner-product transform of an index ("mips"); an artifact without one is
# written as version 1, which embrecall 0.1 reads too.
READABLE_VERSIONS = (1, 2)
MANIFEST = "manifest.json"
_HASH_CHUNK = 8 << 20
_INDEX_NOTES = ("choice", "tuning")  # how an index was chosen and tuned, kept for `inspect`


class ArtifactExistsError(ArtifactError):
    """The output directory exists and replacing it was not asked for (``.path`` says which)."""

    def __init__(self, path: Path) -> None:
        super().__init__(f"{path} already exists (pass overwrite=True to replace it)")
        self.path = path


# -- writing ---------------------------------------------------------------------------------
def save_artifact(rec: Recommender, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write ``rec`` to the directory ``path`` atomically; returns the path.

    An existing ``path`` is refused unless ``overwrite=True``, in which case it is replaced only
    once the new artifact is complete. Temporary folders left beside ``path`` by a killed save
    of the same ``path`` are removed first.
    """
    target = Path(path)
    if target.exists() and not overwrite:
        raise ArtifactExistsError(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(target.with_name(f".{target.name}.lock"), remove=True):
        _clean_leftovers(target)
        if target.exists() and not overwrite:  # put back by the clean-up
            raise ArtifactExistsError(target)
        staging = target.with_name(f".{target.name}.tmp-{secrets.token_hex(4)}")
        staging.mkdir(0o755)  # an artifact is shared with servers
        _write(rec, staging, target)
    return target


def _leftover_pattern(target: Path) -> re.Pattern:
    # exact, so that the leftovers of "art" are never those of "art.tmp-x" or "art.old-y"
    return re.compile(rf"\.{re.escape(target.name)}\.(tmp|old)-[0-9a-f]{{8}}")


def _clean_leftovers(target: Path) -> None:
    """Remove what killed saves of ``target`` left; called with ``target``'s lock held."""
    pattern = _leftover_pattern(target)
    matches = [(p, pattern.fullmatch(p.name)) for p in target.parent.iterdir()]
    found = [p for p, m in matches if m]
    olds = sorted((p for p, m in matches if m and m.group(1) == "old"), key=_mtime)
    if olds and not os.path.lexists(target):
        # killed between moving the old artifact aside and renaming the new one in
        os.rename(olds[-1], target)
        fsync_dir(target.parent)
        log.warning("%s: put back the artifact a killed save had moved aside", target)
        found.remove(olds[-1])
    for p in found:
        log.info("removing %s, left by a killed save", p)
        shutil.rmtree(p, ignore_errors=True)


def _mtime(path: Path) -> float:
    return path.lstat().st_mtime


def _write(rec: Recommender, staging: Path, target: Path) -> None:
    from embrecall import __version__

    try:
        manifest: dict[str, Any] = {
            "format": FORMAT,
            "format_version": _version_needed(rec),
            "embrecall_version": __version__,
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "spaces": {},
            "indexes": {},
            "queries": {},
            "catalog": None,
            "seen": None,
            "files": {},
        }
        for name, emb in (("items", rec.items), ("users", rec.users)):
            if emb is not None:
                manifest["spaces"][name] = _write_space(staging, name, emb)
        for name, index in rec.indexes.items():
            rel = f"indexes/{name}.faiss"
            (staging / "indexes").mkdir(exist_ok=True)
            index.save(str(staging / rel))
            manifest["indexes"][name] = {**index.describe(), "file": rel}
        for name, kind in rec.query_kinds.items():
            manifest["queries"][name] = {
                "query_space": kind.query_space,
                "target_space": kind.target_space,
                "metric": kind.metric,
                "spec": kind.spec,
                "index": kind.index_name,
            }
        for key, catalog in (("catalog", rec.catalog), ("user_catalog", rec.user_catalog)):
            if catalog is not None:
                catalog.to_parquet(staging / f"{key}.parquet")
                manifest[key] = {
                    "file": f"{key}.parquet",
                    "count": len(catalog),
                    "columns": list(catalog.columns),
                }
        filters = {}
        for space in ("items", "users"):
            table = rec.field_table(space)
            if table is not None:
                filters[space] = table.save(staging, f"filters/{space}", _save_npy)
        manifest["filters"] = filters or None
        if rec.seen is not None:
            (staging / "seen").mkdir()
            _save_npy(staging / "seen/indptr.npy", rec.seen.indptr)
            _save_npy(staging / "seen/item_rows.npy", rec.seen.item_rows)
            manifest["seen"] = {
                "indptr": "seen/indptr.npy",
                "item_rows": "seen/item_rows.npy",
                "users": int(rec.seen.n_users),
                "interactions": int(rec.seen.nnz),
            }
        manifest["files"] = {
            rel: {"bytes": (staging / rel).stat().st_size, "sha256": _sha256(staging / rel)}
            for rel in sorted(_relative_files(staging))
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        _fsync_tree(staging)
        _move_into_place(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _version_needed(rec: Recommender) -> int:
    return 2 if any(index.mips is not None for index in rec.indexes.values()) else 1


def _write_space(root: Path, name: str, emb: Embeddings) -> dict[str, Any]:
    (root / name).mkdir()
    ids = emb.ids if emb.id_kind == "int" else np.asarray(emb.ids, dtype=str)
    _save_npy(root / name / "ids.npy", ids)
    _save_npy(root / name / "vectors.npy", emb.vectors)
    return {
        "count": len(emb),
        "dim": emb.dim,
        "id_kind": emb.id_kind,
        "source": emb.source,
        "ids": f"{name}/ids.npy",
        "vectors": f"{name}/vectors.npy",
    }


def _save_npy(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as f:
        np.save(f, array, allow_pickle=False)


def _move_into_place(staging: Path, target: Path) -> None:
    if not target.exists():
        os.rename(staging, target)
        fsync_dir(target.parent)
        return
    # the staging suffix, so that a kill between the two renames is recognised and undone
    old = target.with_name(f".{target.name}.old-{staging.name.rsplit('-', 1)[1]}")
    os.rename(target, old)
    os.rename(staging, target)
    fsync_dir(target.parent)
    shutil.rmtree(old, ignore_errors=True)


def read_manifest(path: str | os.PathLike) -> dict[str, Any]:
    """The manifest of the artifact at ``path``, checked for format and version only."""
    root = Path(path)
    if not root.is_dir():
        raise ArtifactError(f"{root}: no artifact directory there")
    try:
        manifest = json.loads((root / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ArtifactError(f"{root}: no {MANIFEST} (not an embrecall artifact)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{root / MANIFEST}: not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ArtifactError(f"{root / MANIFEST}: not an embrecall artifact manifest")
    version = manifest.get("format_version")
    if version not in READABLE_VERSIONS:
        newer = isinstance(version, int) and version > FORMAT_VERSION
        hint = "; upgrade embrecall" if newer else ""
        raise ArtifactError(
            f"{root}: artifact format version {version!r}, this embrecall reads version "
            f"{' or '.join(map(str, READABLE_VERSIONS))}{hint}"
        )
    return manifest


def verify_artifact(path: str | os.PathLike) -> dict[str, Any]:
    """Check every file's presence, size and SHA-256 against the manifest; return the manifest."""
    root = Path(path)
    manifest = read_manifest(root)
    check_regular_tree(root)
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        raise ArtifactError(f"{root / MANIFEST}: lists no files")
    for rel, meta in files.items():
        file = _inside(root, rel)
        if not file.is_file():
            raise ArtifactError(f"{root}: {rel} is missing")
        size = file.stat().st_size
        if size != meta.get("bytes"):
            raise ArtifactError(
                f"{root}: {rel} has {size} bytes, the manifest says {meta.get('bytes')} "
                "(truncated or altered)"
            )
        if _sha256(file) != meta.get("sha256"):
            raise ArtifactError(
                f"{root}: {rel} does not match its SHA-256 checksum (altered or corrupt)"
            )
    return manifest


def load_artifact(
    path: str | os.PathLike, *, verify: bool = True, mmap: bool = False
) -> Recommender:
    """Load the artifact at ``path`` as a :class:`~embrecall.recommender.Recommender`.

    ``mmap=True`` maps the vectors and the index codes from the files instead of reading them
    into memory: several server processes then share one copy through the page cache.

    Raises :class:`ArtifactError` saying what is wrong when the artifact is missing, corrupt,
    altered, of another format version, or inconsistent with its manifest.
    """
    from embrecall.catalog import Catalog
    from embrecall.filters import FieldTable
    from embrecall.interactions import SeenItems
    from embrecall.recommender import QueryKind, Recommender

    root = Path(path)
    t0 = time.perf_counter()
    manifest = verify_artifact(root) if verify else read_manifest(root)
    listed = set(manifest.get("files", {}))

    def file(rel: str) -> Path:
        if rel not in listed:
            raise ArtifactError(
                f"{root}: manifest refers to {rel}, which its file list does not cover"
            )
        return _inside(root, rel)

    try:
        spaces = {
            name: _read_space(file, name, meta, mmap) for name, meta in manifest["spaces"].items()
        }
        if "items" not in spaces:
            raise ArtifactError(f"{root}: the manifest has no items space")
        indexes = {}
        for name, meta in manifest["indexes"].items():
            index = VectorIndex.load(
                str(file(meta["file"])),
                meta["metric"],
                meta["spec"],
                meta.get("search_params"),
                mips=meta.get("mips"),
                dim=meta["dim"],
                notes={key: meta[key] for key in _INDEX_NOTES if key in meta},
                mmap=mmap,
            )
            if index.ntotal != meta["ntotal"] or index.dim != meta["dim"]:
                raise ArtifactError(
                    f"{root}: index {name} holds {index.ntotal} x {index.dim}, "
                    f"the manifest says {meta['ntotal']} x {meta['dim']}"
                )
            indexes[name] = index
        kinds = {}
        for name, q in manifest["queries"].items():
            kinds[name] = QueryKind(
                name,
                q["query_space"],
                q["target_space"],
                q["metric"],
                q["spec"],
                indexes[q["index"]].search_params if q["index"] in indexes else {},
            )
            target = spaces.get(q["target_space"])
            if (
                target is None
                or q["index"] not in indexes
                or indexes[q["index"]].ntotal != len(target)
            ):
                raise ArtifactError(f"{root}: query kind {name} does not match its index and space")
        catalog = None
        if manifest.get("catalog"):
            catalog = Catalog.from_parquet(file(manifest["catalog"]["file"]))
        user_catalog = None
        if manifest.get("user_catalog"):
            user_catalog = Catalog.from_parquet(file(manifest["user_catalog"]["file"]))
        # typed filter fields; an artifact written before filters types them on first use
        fields = {}
        for space, entry in (manifest.get("filters") or {}).items():
            table = FieldTable.load(entry, lambda rel: _load_npy(file(rel), mmap=mmap))
            if space not in spaces or table.n != len(spaces[space]):
                raise ArtifactError(f"{root}: filter fields of {space} do not match its rows")
            fields[space] = table
        seen = None
        if manifest.get("seen"):
            seen = SeenItems(
                _load_npy(file(manifest["seen"]["indptr"])),
                _load_npy(file(manifest["seen"]["item_rows"])),
            )
            if seen.n_users != len(spaces["users"]) or (
                seen.nnz and seen.item_rows.max() >= len(spaces["items"])
            ):
                raise ArtifactError(f"{root}: seen-items table does not match the users and items")
    except ArtifactError:
        raise
    except (EmbrecallError, KeyError, TypeError, ValueError, OSError) as exc:
        raise ArtifactError(f"{root}: inconsistent or unreadable artifact: {exc}") from None
    info = {
        "artifact": str(root.resolve()),
        "format_version": manifest["format_version"],
        "embrecall_version": manifest.get("embrecall_version"),
        "created_at": manifest.get("created_at"),
    }
    rec = Recommender(
        spaces["items"],
        spaces.get("users"),
        indexes,
        kinds,
        catalog=catalog,
        seen=seen,
        info=info,
        user_catalog=user_catalog,
        fields=fields,
    )
    log.info("loaded artifact %s in %.2fs", root, time.perf_counter() - t0)
    return rec


def _read_space(file, name: str, meta: dict, mmap: bool = False) -> Embeddings:
    ids = _load_npy(file(meta["ids"]))
    if meta["id_kind"] == "str":
        ids = ids.astype(object)
    vectors = _load_npy(file(meta["vectors"]), mmap=mmap)
    if vectors.shape != (meta["count"], meta["dim"]) or len(ids) != meta["count"]:
        raise ArtifactError(
            f"space {name}: files hold {len(ids)} ids and vectors {vectors.shape}, "
            f"the manifest says {meta['count']} x {meta['dim']}"
        )
    return Embeddings(ids, vectors, source=meta.get("source", name))


def _load_npy(path: Path, mmap: bool = False) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False, mmap_mode="r" if mmap else None)
    except ValueError as exc:
        raise ArtifactError(f"{path}: not a plain numpy array file ({exc})") from None


def check_regular_tree(root: str | os.PathLike) -> None:
    """Refuse anything under ``root`` but folders and regular files (``root`` itself may be a
    link): a symbolic link would make a copy take its target along, and a pipe would hang it."""
    root = Path(root)
    for dirpath, dirnames, filenames in os.walk(root):  # does not descend into linked folders
        for name in dirnames + filenames:
            p = Path(dirpath, name)
            mode = p.lstat().st_mode
            rel = p.relative_to(root).as_posix()
            if stat.S_ISLNK(mode):
                raise ArtifactError(
                    f"{root}: {rel} is a symbolic link; an artifact holds regular files only"
                )
            if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                raise ArtifactError(
                    f"{root}: {rel} is not a regular file; an artifact holds regular files only"
                )


def _inside(root: Path, rel: str) -> Path:
    """``root/rel``, refusing paths that would leave the artifact (a hostile manifest) and
    symbolic links (also when loading without verification)."""
    p = root
    for part in Path(rel).parts:
        p = p / part
        if p.is_symlink():
            raise ArtifactError(
                f"{root}: {p.relative_to(root).as_posix()} is a symbolic link; "
                "an artifact holds regular files only"
            )
    candidate = (root / rel).resolve()
    if not str(candidate).startswith(str(root.resolve()) + os.sep):
        raise ArtifactError(f"{root}: manifest path {rel!r} points outside the artifact")
    return candidate


def _relative_files(root: Path) -> list[str]:
    return [p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            h.update(chunk)
    return h.hexdigest()
