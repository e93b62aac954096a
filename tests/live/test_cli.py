"""`embrecall update` and `embrecall compact` on a real version root."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import embrecall
from embrecall.cli import main
from embrecall.live.apply import load_with_changes
from embrecall.live.changelog import ChangeLog
from embrecall.live.feed import LiveFeed
from embrecall.versions import VersionRoot

DIM = 16


def _write_items(tmp, ids, seed=0):
    vectors = np.random.default_rng(seed).standard_normal((len(ids), DIM)).astype(np.float32)
    np.save(tmp / "new.npy", vectors)
    np.save(tmp / "new_ids.npy", np.asarray(ids, dtype=np.int64))
    return tmp / "new.npy", vectors


def test_update_applies_files_in_bulk(root: VersionRoot, tmp_path, capsys):
    path, vectors = _write_items(tmp_path, [700_000, 700_001, 3])
    pd.DataFrame({"id": [700_000, 700_001], "title": ["A", "B"]}).to_csv(
        tmp_path / "cat.csv", index=False
    )
    pd.DataFrame({"userId": [1000, 1000], "movieId": [700_000, 10]}).to_csv(
        tmp_path / "seen.csv", index=False
    )
    (tmp_path / "gone.txt").write_text("# removed\n17\n24\n")
    code = main(
        [
            "update",
            str(root.path),
            "--items",
            str(path),
            "--catalog",
            str(tmp_path / "cat.csv"),
            "--delete-items",
            str(tmp_path / "gone.txt"),
            "--delete-users",
            "1001,1002",
            "--seen",
            str(tmp_path / "seen.csv"),
            "--json",
            "-q",
        ]
    )
    assert code == 0, capsys.readouterr().err
    rec, _, _ = load_with_changes(root, "v1")
    assert rec.similar_items_by_vector(vectors[0], 1).ids[0] == 700_000
    assert rec.similar_items_by_vector(vectors[0], 1).records[0]["title"] == "A"
    assert rec.similar_items_by_vector(vectors[2], 1).ids[0] == 3  # replaced vector
    assert {700_000, 10} <= set(rec.seen_items(1000).tolist())
    assert not {17, 24} & set(rec.recommend_by_vector(np.ones(DIM), 500).ids.tolist())
    with pytest.raises(embrecall.errors.UnknownIdError):
        rec.similar_users(1001)


def test_bad_update_input_is_one_line_and_writes_nothing(root: VersionRoot, tmp_path, capsys):
    np.save(tmp_path / "bad.npy", np.ones((2, 3), dtype=np.float32))
    assert main(["update", str(root.path), "--items", str(tmp_path / "bad.npy"), "-q"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("embrecall: error:") and "dimension" in err and "\n" not in err
    assert main(["update", str(root.path), "--delete-items", "4", "-q"]) == 1  # not an item id
    assert "unknown item id 4" in capsys.readouterr().err
    assert main(["update", str(root.path / "versions" / "v1"), "--delete-items", "3"]) == 1
    assert "not a version root" in capsys.readouterr().err
    assert ChangeLog.of(root.path, "v1").size() == 0


def test_compact_folds_changes_into_a_new_version_and_carries_later_ones(
    root: VersionRoot, tmp_path, capsys
):
    path, vectors = _write_items(tmp_path, [700_000, 700_001])
    assert main(["update", str(root.path), "--items", str(path), "--delete-items", "3", "-q"]) == 0
    assert main(["compact", str(root.path), "--id", "v1c", "--json"]) == 0, capsys.readouterr()
    assert root.current() == "v1c"
    assert main(["compact", str(root.path), "--id", "v1c", "-q"]) == 1
    assert "already has a version 'v1c'" in capsys.readouterr().err
    compacted = embrecall.load(root.path_of("v1c"))
    assert compacted.items.contains(700_000) and not compacted.items.contains(3)
    assert compacted.similar_items_by_vector(vectors[1], 1).ids[0] == 700_001
    # a change acknowledged on v1 after the compaction read its log is carried, not lost
    old = ChangeLog.of(root.path, "v1")
    old.append([{"op": "delete", "space": "items", "id": 10, "at": 0.0}])
    rec = embrecall.load(root.path_of("v1c"))
    LiveFeed(root.path, "v1c", rec, predecessor="v1")
    assert not rec.live.holds(rec, "items", 10)
    assert rec.live.holds(rec, "items", 700_000)  # folded, not applied twice into a delta
    assert rec.live.state.snapshot.spaces["items"].size == 0
