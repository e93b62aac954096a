"""``--index auto`` by a race of candidate kinds: what it measures, what it keeps, and that the
kept index really reaches the target on queries the race never saw."""

from __future__ import annotations

import json

import numpy as np
import pytest

from embrecall.embeddings import Embeddings
from embrecall.index.choice import estimate_bytes, race_candidates
from embrecall.index.exact import exact_topk
from embrecall.index.race import _growth, _winner, race_index
from embrecall.index.recall import recall_at_k
from embrecall.recommender import Recommender
from helpers import run_embrecall, skewed_recsys

N, D = 8_000, 16
TUNED_USERS = 1_000


@pytest.fixture(scope="module")
def data():
    return skewed_recsys(n_items=N, n_users=1_300, dim=D, seed=3)


@pytest.fixture(scope="module")
def raced(data):
    """Built with a latency target that an exact scan of 20,000 x 16 cannot meet: auto races."""
    items, users = data
    return Recommender.build(
        Embeddings(np.arange(N), items),
        Embeddings(np.arange(TUNED_USERS), users[:TUNED_USERS]),  # the rest stay unseen
        max_latency_ms=0.01,
        progress=False,
    )


def test_every_candidate_is_raced_and_the_fastest_that_reached_the_target_is_built(raced):
    choice = raced.indexes[raced.query_kinds["recommend"].index_name].notes["choice"]
    race = choice["race"]
    entries = race["candidates"]
    labels = [e["label"] for e in entries]
    assert labels == [c.label for c in race_candidates(N, D, "ip")]
    assert race["target_recall"] == 0.95 and race["sample"] == N  # small: no subsample
    for entry in entries:
        assert entry["fits"] and entry["build_s"] >= 0 and entry["p50_ms"] > 0
        assert 0 <= entry["recall"] <= 1
    (winner,) = [e for e in entries if e["won"]]
    reached = [e for e in entries if e["reached"]]
    assert winner["reached"] and winner["p50_ms_at_n"] == min(e["p50_ms_at_n"] for e in reached)
    assert choice["spec"] == winner["spec"] == raced.query_kinds["recommend"].spec
    assert choice["p50_ms_measured"] > 0


def test_the_raced_index_reaches_the_target_on_fresh_queries(raced, data):
    items, users = data
    index = raced.indexes[raced.query_kinds["recommend"].index_name]
    assert raced.describe()["queries"]["recommend"]["tuning"]["target_recall"] == 0.95
    fresh = users[TUNED_USERS:]  # users neither the race nor the tuning saw
    found = index.search(fresh, 10)[1]
    exact = exact_topk(items, fresh, 10, "ip")[1]
    assert recall_at_k(items, fresh, found, exact, "ip").mean() >= 0.93  # tuned to 0.95


def test_similar_items_race_leaves_each_query_out_of_its_own_answer(raced):
    index = raced.indexes[raced.query_kinds["similar_items"].index_name]
    race = index.notes["choice"]["race"]
    assert all(e["label"] != "IVF-Flat, norm-augmented" for e in race["candidates"])  # cosine
    ids = raced.items.ids[:50]
    for item in ids:
        assert item not in raced.similar_items(item, 10).ids


def test_the_race_is_kept_in_the_artifact_and_shown_by_inspect(raced, tmp_path):
    out = tmp_path / "art"
    raced.save(str(out))
    manifest = json.loads((out / "manifest.json").read_text())
    assert json.dumps(manifest).count('"won": true') == 2  # recommend's and similar_items'
    shown = run_embrecall("inspect", str(out))
    assert shown.returncode == 0, shown.stderr
    assert "* IVF" in shown.stdout or "* HNSW" in shown.stdout or "* exact" in shown.stdout
    assert "ms p50 measured" in shown.stdout


def test_a_candidate_over_the_budget_is_not_built_and_cannot_win(data):
    items, users = data
    hnsw = estimate_bytes("HNSW32", N, D, "ip", "native")
    choice = race_index(items, users, "ip", max_memory=hnsw - 1, progress=False)
    (graph,) = [e for e in choice.race["candidates"] if e["spec"] == "HNSW32"]
    assert not graph["fits"] and not graph["won"] and "p50_ms" not in graph
    assert choice.memory_bytes < hnsw


def test_no_race_keeps_the_size_ladder(data):
    items, users = data
    rec = Recommender.build(
        Embeddings(np.arange(N), items),
        Embeddings(np.arange(len(users)), users),
        max_latency_ms=0.01,
        race=False,
        progress=False,
    )
    choice = rec.indexes[rec.query_kinds["recommend"].index_name].notes["choice"]
    assert "race" not in choice and choice["spec"].startswith("IVF")
    assert "tuning" not in rec.describe()["queries"]["recommend"]  # nothing asked it


def test_sets_a_scan_answers_in_time_are_exact_without_a_race(data):
    items, users = data
    rec = Recommender.build(
        Embeddings(np.arange(N), items), Embeddings(np.arange(len(users)), users), progress=False
    )
    choice = rec.indexes[rec.query_kinds["recommend"].index_name].notes["choice"]
    assert choice["spec"] == "Flat" and "race" not in choice


def test_the_winner_is_the_fastest_that_reached_else_the_most_accurate():
    def entry(label, reached, recall, p50):
        return {
            "label": label,
            "reached": reached,
            "recall": recall,
            "holdout_recall": recall,
            "p50_ms_at_n": p50,
        }

    fast_miss = entry("a", False, 0.90, 0.01)
    slow_hit = entry("b", True, 0.97, 0.50)
    quick_hit = entry("c", True, 0.96, 0.20)
    assert _winner([fast_miss, slow_hit, quick_hit])["label"] == "c"
    assert _winner([fast_miss, entry("d", False, 0.93, 0.4)])["label"] == "d"


def test_latency_grows_by_kind_from_the_sample_to_full_size():
    assert _growth("flat", 1_000_000, 100_000) == pytest.approx(10)
    assert _growth("ivf", 1_000_000, 100_000) == pytest.approx(10**0.5)
    assert 1 < _growth("hnsw", 1_000_000, 100_000) < 1.3
    assert _growth("ivf", 50_000, 50_000) == 1.0
