"""Index choice, budget, tuning and memory-mapped loading through `build`, artifacts and the CLI."""

from __future__ import annotations

import json
import mmap

import numpy as np
import pytest

import embrecall
from embrecall.cli import main
from embrecall.embeddings import Embeddings
from embrecall.errors import InvalidArgumentError
from embrecall.recommender import Recommender
from helpers import skewed_recsys


@pytest.fixture(scope="module")
def spaces():
    items, users = skewed_recsys(n_items=12_000, n_users=300, dim=32, seed=2)
    return (
        Embeddings(np.arange(len(items), dtype=np.int64) * 7 + 3, items, source="items"),
        Embeddings(np.arange(len(users), dtype=np.int64) + 1, users, source="users"),
    )


@pytest.fixture(scope="module")
def tuned(spaces, tmp_path_factory):
    items, users = spaces
    rec = Recommender.build(
        items,
        users,
        index={"recommend": "IVF128,Flat", "similar_items": "auto", "similar_users": "auto"},
        target_recall=0.9,
        max_latency_ms=0.05,  # 12,000 x 32 is then too slow to scan: the ladder picks HNSW
        race=False,  # the race has its own tests (test_race.py)
    )
    path = tmp_path_factory.mktemp("tuned") / "artifact"
    rec.save(path)
    return rec, path


def test_the_manifest_keeps_the_choice_the_tuning_and_the_transform(tuned):
    _, path = tuned
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["format_version"] == 2  # an index with the inner-product transform
    queries = manifest["queries"]
    ivf = manifest["indexes"][queries["recommend"]["index"]]
    assert ivf["mips"]["transform"] == "norm-augmentation" and ivf["mips"]["index_dim"] == 33
    assert ivf["tuning"]["reached"] and ivf["tuning"]["recall"] >= 0.9
    assert ivf["search_params"]["nprobe"] == ivf["tuning"]["params"]["nprobe"]
    assert ivf["bytes_per_vector"] > 32 * 4 and "choice" not in ivf  # explicit spec, no choice
    graph = manifest["indexes"][queries["similar_items"]["index"]]
    assert graph["spec"] == "HNSW32" and graph["mips"] is None
    assert "HNSW" in graph["choice"]["reason"] and graph["tuning"]["query_kind"] == "similar_items"


def test_a_loaded_artifact_answers_as_built_with_the_tuned_parameters(tuned):
    rec, path = tuned
    for mapped in (False, True):
        loaded = embrecall.load(path, mmap=mapped)
        ivf = loaded.indexes[loaded.query_kinds["recommend"].index_name]
        assert ivf.search_params == rec.indexes[ivf_name(rec)].search_params
        assert ivf.mips == rec.indexes[ivf_name(rec)].mips
        users = list(rec.users.ids[:8])
        for method, ids in (("recommend", users), ("similar_items", list(rec.items.ids[:8]))):
            a_ids, a_scores = getattr(rec, method)(ids, k=10)
            b_ids, b_scores = getattr(loaded, method)(ids, k=10)
            assert a_ids.tolist() == b_ids.tolist()
            np.testing.assert_allclose(a_scores, b_scores, rtol=1e-5)
        assert _is_mapped(loaded.items.vectors) == mapped


def _is_mapped(array: np.ndarray) -> bool:
    """Whether the array's memory is a file mapping (views over np.memmap keep it as a base)."""
    while array is not None:
        if isinstance(array, (np.memmap, mmap.mmap)):
            return True
        array = getattr(array, "base", None)
    return False


def ivf_name(rec):
    return rec.query_kinds["recommend"].index_name


def test_a_request_may_still_override_the_tuned_parameters(tuned):
    rec, _ = tuned
    user = rec.users.ids[0]
    narrow = rec.recommend(user, k=10, params={"nprobe": 1})[0]
    wide = rec.recommend(user, k=10, params={"nprobe": 128})[0]
    exact = embrecall.index.exact_search(rec.items.vectors, rec.users.vectors[:1], 10, "ip")[1][0]
    assert set(wide.tolist()) == set(rec.items.ids[exact].tolist())
    assert narrow.tolist() != wide.tolist()


def test_a_budget_too_small_for_any_index_is_refused(spaces):
    items, users = spaces
    with pytest.raises(InvalidArgumentError, match="no index kind holds 12,000 x 32"):
        Recommender.build(items, users, max_memory="100K", max_latency_ms=0.01)


def test_cli_build_with_budget_and_target_then_inspect(spaces, tmp_path, capsys):
    items, users = spaces
    np.save(tmp_path / "items.npy", items.vectors)
    np.save(tmp_path / "items_ids.npy", items.ids)
    np.save(tmp_path / "users.npy", users.vectors)
    np.save(tmp_path / "users_ids.npy", users.ids)
    out = tmp_path / "art"
    argv = ["build", "--items", str(tmp_path / "items.npy"), "--users", str(tmp_path / "users.npy")]
    code = main(
        [
            *argv,
            "--out",
            str(out),
            "--max-memory",
            "2M",
            "--max-latency-ms",
            "0.05",
            "--target-recall",
            "0.8",
            "-q",
        ]
    )
    assert code == 0
    capsys.readouterr()
    assert main(["inspect", str(out)]) == 0
    text = capsys.readouterr().out
    assert "IVF" in text and "within 2.0 MiB" in text and "bytes per vector" in text
    assert "tuned         recall@10" in text and "norm augmentation" in text
    info = json.loads(_run_json(capsys, ["inspect", str(out), "--json"]))
    assert all(q["memory_bytes"] <= 2 << 20 for q in info["queries"].values())

    assert main([*argv, "--out", str(tmp_path / "no"), "--max-memory", "10K", "-q"]) == 1
    err = capsys.readouterr().err
    assert "no index kind holds" in err and "Traceback" not in err
    assert not (tmp_path / "no").exists()


def _run_json(capsys, argv):
    assert main(argv) == 0
    return capsys.readouterr().out


def test_graphs_are_built_with_a_wide_construction_beam(spaces):
    from embrecall.index import VectorIndex
    from embrecall.index.faiss_index import HNSW_EF_CONSTRUCTION
    from embrecall.index.structure import core_index

    items, _ = spaces
    index = VectorIndex.build(items.vectors[:2000], "cosine", "HNSW16", progress=False)
    assert core_index(index.index).hnsw.efConstruction == HNSW_EF_CONSTRUCTION == 200


@pytest.mark.parametrize("excluded", [1, 100, 256, 600])
def test_ivf_exclusions_answer_as_a_selector_does_whether_fetched_past_or_filtered(
    spaces, excluded
):
    import faiss

    from embrecall.index import VectorIndex
    from embrecall.index.structure import search_parameters

    items, users = spaces
    index = VectorIndex.build(
        items.vectors, "ip", "IVF64,Flat", mips="native", search_params={"nprobe": 4}
    )
    rng = np.random.default_rng(excluded)
    for q in users.vectors[:20]:
        rows = np.sort(rng.choice(len(items), excluded, replace=False)).astype(np.int64)
        got_s, got_r = index.search(q[None], 10, exclude=[rows])
        selector = faiss.IDSelectorNot(faiss.IDSelectorBatch(rows))
        params = search_parameters(index.index, {"nprobe": 4}, selector)
        want_s, want_r = index.index.search(q[None], 10, params=params)
        assert not np.isin(got_r, rows).any()
        np.testing.assert_allclose(got_s, want_s, rtol=1e-5)  # ties may swap rows, not scores
        assert (got_r == want_r).mean() > 0.9
