"""A batch export of a version root sees the live changes pending on its current version."""

from __future__ import annotations

import json

import numpy as np

import embrecall
from embrecall.live.apply import load_for_export, load_with_changes, update
from embrecall.versions import VersionRoot
from helpers import assert_same_list


def _root_with_changes(artifact, tmp_path):
    root = VersionRoot(tmp_path / "root")
    root.publish(artifact, "v1")
    rec = embrecall.load(root.path_of("v1"))
    rng = np.random.default_rng(3)
    new = embrecall.Embeddings([777_001, 777_002], rng.standard_normal((2, rec.items.dim)) * 3)
    gone = [int(i) for i in rec.recommend(1000, 3).ids]
    update(root.path, items=new, delete_items=gone, progress=False)
    return root, gone


def test_batch_of_a_root_applies_pending_changes_unless_told_not_to(artifact, tmp_path, batch_cli):
    root, gone = _root_with_changes(artifact, tmp_path)
    out = str(tmp_path / "recs.sqlite")
    report = json.loads(batch_cli("batch", str(root.path), "--out", out, "-k", "10", "--json"))
    assert report["live_changes"] == 5
    # the same lists as the live overlay answers online, and as exact search of the changed data
    online = embrecall.load(root.path_of("v1"))
    changed, applied = load_for_export(root.path, verify=True, exact=True)
    assert applied == 5 and len(changed.items) == len(online.items) - 3 + 2
    live, _, _ = load_with_changes(root, "v1")
    for user in (1000, 1001, 1007, 1033):
        cached = json.loads(batch_cli("cached", str(user), "--from", out, "--json", "-k", "10"))
        ids = [r["id"] for r in cached["results"]]
        assert not set(ids) & set(gone)
        want = live.recommend(user, 10)
        scores = [r["score"] for r in cached["results"]]
        assert_same_list((ids, scores), (want.ids, want.scores))
    # opting out exports the artifact alone
    plain = json.loads(
        batch_cli("batch", str(root.path), "--out", out, "-k", "10", "--json", "--without-changes")
    )
    assert plain["live_changes"] == 0
    cached = json.loads(batch_cli("cached", "1000", "--from", out, "--json", "-k", "10"))
    assert {r["id"] for r in cached["results"]} >= set(gone)


def test_index_search_of_a_root_with_changes_rebuilds_its_index(artifact, tmp_path):
    root, gone = _root_with_changes(artifact, tmp_path)
    rec, applied = load_for_export(root.path, verify=True, exact=False)
    assert applied == 5
    original = embrecall.load(root.path_of("v1"))
    for name, kind in original.query_kinds.items():
        assert rec.query_kinds[name].metric == kind.metric
    assert not set(rec.recommend(1000, 10).ids.tolist()) & set(gone)
    assert {777_001, 777_002} <= set(rec.items.ids.tolist())
    # and a root without changes, or an artifact, is loaded as it is
    clean = VersionRoot(tmp_path / "clean")
    clean.publish(artifact, "v1")
    assert load_for_export(clean.path, verify=True, exact=True)[1] == 0
    assert load_for_export(artifact, verify=True, exact=True)[1] == 0
