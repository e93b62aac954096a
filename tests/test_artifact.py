"""Artifacts: round trips, and every kind of damage refused with an ArtifactError that says what."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import embrecall
from embrecall.artifact import FORMAT_VERSION, load_artifact, save_artifact
from embrecall.errors import ArtifactError
from helpers import assert_same_list, build_small

FIXTURE_V1 = Path(__file__).parent / "fixtures" / "artifact-v1"
FIXTURE_V2 = Path(__file__).parent / "fixtures" / "artifact-v2"


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("art")
    rec = build_small(
        tmp, index={"recommend": "Flat", "similar_items": "HNSW16", "similar_users": "Flat"}
    )
    path = tmp / "artifact"
    rec.save(path)
    return rec, path


def _copy(saved, tmp_path) -> Path:
    dst = tmp_path / "copy"
    shutil.copytree(saved[1], dst)
    return dst


def test_round_trip_answers_identically(saved):
    rec, path = saved
    loaded = embrecall.load(path)
    users = list(rec.users.ids[:5])
    for method, query in (
        ("recommend", users),
        ("similar_users", users),
        ("similar_items", list(rec.items.ids[:5])),
    ):
        a_ids, a_scores = getattr(rec, method)(query, k=12)
        b_ids, b_scores = getattr(loaded, method)(query, k=12)
        assert a_ids.tolist() == b_ids.tolist()
        np.testing.assert_allclose(a_scores, b_scores)
    assert (
        loaded.results(*loaded.recommend(users[0], k=2))[0]["title"]
        == rec.results(*rec.recommend(users[0], k=2))[0]["title"]
    )
    assert loaded.seen_items(users[0]).tolist() == rec.seen_items(users[0]).tolist()


def test_manifest_describes_everything(saved):
    _, path = saved
    manifest = json.loads((path / "manifest.json").read_text())
    assert (
        manifest["format_version"] == 1  # no inner-product transform: readable by 0.1 too
        and FORMAT_VERSION == 2
        and manifest["embrecall_version"] == embrecall.__version__
    )
    assert manifest["spaces"]["items"] | {} and manifest["spaces"]["items"]["count"] == 500
    assert manifest["queries"]["recommend"]["metric"] == "ip"
    assert manifest["queries"]["similar_items"]["metric"] == "cosine"
    assert (
        manifest["indexes"][manifest["queries"]["similar_items"]["index"]]["kind"]
        == "IndexHNSWFlat"
    )
    on_disk = {p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()} - {
        "manifest.json"
    }
    assert set(manifest["files"]) == on_disk
    assert all(len(meta["sha256"]) == 64 for meta in manifest["files"].values())
    assert "created_at" in manifest


def test_string_ids_round_trip_without_pickle(tmp_path):
    rec = build_small(tmp_path, string_ids=True)
    rec.save(tmp_path / "a")
    ids = np.load(tmp_path / "a" / "items" / "ids.npy", allow_pickle=False)
    assert ids.dtype.kind == "U"
    loaded = embrecall.load(tmp_path / "a")
    assert loaded.recommend("user-2", k=4)[0].tolist() == rec.recommend("user-2", k=4)[0].tolist()


def test_truncated_file_is_refused(saved, tmp_path):
    path = _copy(saved, tmp_path)
    target = path / "items" / "vectors.npy"
    target.write_bytes(target.read_bytes()[:-100])
    with pytest.raises(ArtifactError, match=r"items/vectors.npy has \d+ bytes.*truncated"):
        load_artifact(path)


@pytest.mark.parametrize(
    "rel", ["indexes", "items/ids.npy", "catalog.parquet", "seen/item_rows.npy"]
)
def test_bit_flip_is_refused(saved, tmp_path, rel):
    path = _copy(saved, tmp_path)
    target = path / rel
    if target.is_dir():
        target = sorted(target.iterdir())[0]
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x10
    target.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="does not match its SHA-256"):
        load_artifact(path)


def test_wrong_format_version_is_refused(saved, tmp_path):
    path = _copy(saved, tmp_path)
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["format_version"] = FORMAT_VERSION + 1
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(
        ArtifactError, match="format version 3, this embrecall reads version 1 or 2; upgrade"
    ):
        load_artifact(path)


def test_manifest_that_disagrees_with_files_is_refused(saved, tmp_path):
    path = _copy(saved, tmp_path)
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["spaces"]["items"]["count"] = 499
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="manifest says 499"):
        load_artifact(path)


def test_missing_or_broken_manifest_and_missing_files(saved, tmp_path):
    with pytest.raises(ArtifactError, match="no artifact directory"):
        load_artifact(tmp_path / "nowhere")
    path = _copy(saved, tmp_path)
    (path / "catalog.parquet").unlink()
    with pytest.raises(ArtifactError, match="catalog.parquet is missing"):
        load_artifact(path)
    (path / "manifest.json").write_text("{not json")
    with pytest.raises(ArtifactError, match="not valid JSON"):
        load_artifact(path)
    (path / "manifest.json").unlink()
    with pytest.raises(ArtifactError, match="no manifest.json"):
        load_artifact(path)


def test_manifest_paths_cannot_leave_the_artifact(saved, tmp_path):
    path = _copy(saved, tmp_path)
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["files"]["../../etc/passwd"] = {"bytes": 1, "sha256": "0" * 64}
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="outside the artifact"):
        load_artifact(path)


def test_existing_target_needs_overwrite_and_overwrite_replaces_whole(saved, tmp_path):
    rec, _ = saved
    target = tmp_path / "art"
    rec.save(target)
    with pytest.raises(ArtifactError, match="already exists"):
        rec.save(target)
    (target / "stray.txt").write_text("left from before")
    save_artifact(rec, target, overwrite=True)
    assert not (target / "stray.txt").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging left
    embrecall.load(target)


def test_a_failed_save_leaves_nothing_half_written(saved, tmp_path, monkeypatch):
    rec, _ = saved
    import embrecall.artifact as artifact

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(artifact, "_fsync_tree", boom)
    with pytest.raises(OSError, match="disk full"):
        save_artifact(rec, tmp_path / "art")
    assert list(tmp_path.iterdir()) == []


def test_version_1_fixture_still_loads_and_answers():
    """A small artifact written by embrecall 0.1.0 (format 1) is kept under tests, and must load."""
    rec = embrecall.load(FIXTURE_V1)
    expected = json.loads((FIXTURE_V1.parent / "artifact-v1-expected.json").read_text())
    for query in expected:
        ids, scores = getattr(rec, query["method"])(query["id"], k=query["k"])
        assert ids.tolist() == query["ids"]
        np.testing.assert_allclose(scores, query["scores"], rtol=1e-5)
    assert (
        rec.results(*rec.recommend(expected[0]["id"], k=1))[0]["title"]
        == expected[0]["first_title"]
    )


def test_version_2_fixture_still_loads_and_answers():
    """A small format-2 artifact (an IVF index over inner products with the norm augmentation,
    string ids, a catalogue and seen items), written by tests/make_fixture_v2.py, must load and
    give the answers it gave then (ties tolerated)."""
    manifest = json.loads((FIXTURE_V2 / "manifest.json").read_text())
    assert manifest["format_version"] == 2
    augmented = [i for i in manifest["indexes"].values() if i["mips"] is not None]
    assert [i["spec"] for i in augmented] == ["IVF4,Flat"]
    rec = embrecall.load(FIXTURE_V2)
    expected = json.loads((FIXTURE_V2.parent / "artifact-v2-expected.json").read_text())
    for query in expected:
        got = getattr(rec, query["method"])(query["id"], k=query["k"])
        assert_same_list(got, (np.array(query["ids"]), np.array(query["scores"])))
    first = expected[0]
    assert rec.results(*rec.recommend(first["id"], k=1))[0]["title"] == first["first_title"]
    # The seen items are kept out by default, and come back on request.
    with_seen = rec.recommend(first["id"], k=5, exclude_seen=False)[0].tolist()
    assert "item-117" in with_seen and "item-117" not in first["ids"]


def test_a_save_killed_between_its_renames_is_undone_by_the_next(saved, tmp_path):
    """The state a kill between moving the old artifact aside and renaming the new one in
    leaves: the old one is put back, the half-made new one removed, and no lock file stays."""
    rec, path = saved
    target = tmp_path / "art"
    shutil.copytree(path, tmp_path / ".art.old-0123abcd")
    (tmp_path / ".art.tmp-89abcdef").mkdir()  # a killed save's unfinished staging
    (tmp_path / ".art.tmp-89abcdef" / "items").mkdir()
    (tmp_path / ".art.lock").touch()  # left by the killed process; nobody holds it
    other = tmp_path / ".art.v2.tmp-0123abcd"  # another output's (art.v2) folder: not ours
    other.mkdir()
    with pytest.raises(ArtifactError, match=r"already exists \(pass overwrite=True"):
        save_artifact(rec, target)
    embrecall.load(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".art.v2.tmp-0123abcd", "art"]
    save_artifact(rec, target, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".art.v2.tmp-0123abcd", "art"]


def test_symlinks_and_special_files_are_refused_at_verify(saved, tmp_path):
    import os

    path = _copy(saved, tmp_path)
    (path / "seen" / "link").symlink_to(path / "manifest.json")  # even one pointing inside
    with pytest.raises(ArtifactError, match="seen/link is a symbolic link"):
        embrecall.load(path)
    (path / "seen" / "link").unlink()
    os.mkfifo(path / "pipe")
    with pytest.raises(ArtifactError, match="pipe is not a regular file"):
        embrecall.load(path)
