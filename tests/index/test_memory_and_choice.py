"""Memory estimates against built indexes, size parsing, and the automatic index choice."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from embrecall.errors import InvalidArgumentError
from embrecall.index import VectorIndex
from embrecall.index.choice import HNSW_MAX_VECTORS, choose_index, estimate_bytes, ivf_lists
from embrecall.index.memory import estimate_index_bytes, format_size, parse_size

SPECS = [
    "Flat",
    "HNSW32",
    "HNSW16_SQ8",
    "IVF64,Flat",
    "IVF64,SQ8",
    "PQ8x4",
    "IVF64,PQ16x4fs",
    "IVF64,PQ16x4fs,RFlat",
    "IVF64,PQ16x4fs,Refine(SQ8)",
    "PCA16,IVF32,Flat",
]


@pytest.mark.parametrize("spec", SPECS)
@pytest.mark.parametrize("metric", ["l2", "ip"])
def test_estimate_matches_the_built_index_within_a_quarter(spec, metric):
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((6000, 32)).astype(np.float32)
    vectors *= rng.lognormal(0, 0.5, (6000, 1)).astype(np.float32)
    predicted = estimate_bytes(spec, len(vectors), 32, metric)
    index = VectorIndex.build(vectors, metric, spec)
    built = len(faiss.serialize_index(index.index))
    assert 0.75 * built <= predicted <= 1.25 * built, (predicted, built)
    assert 0.75 * built <= index.memory_bytes <= 1.25 * built


def test_estimate_of_an_empty_index_is_its_fixed_part():
    index = faiss.index_factory(32, "IVF64,Flat")
    assert estimate_index_bytes(index, 0) == 64 * 32 * 4  # the centroids only


@pytest.mark.parametrize(
    "text, size",
    [
        ("8G", 8 << 30),
        ("512M", 512 << 20),
        ("1.5GiB", int(1.5 * (1 << 30))),
        ("2000", 2000),
        ("64k", 64 << 10),
        (" 3 GB ", 3 << 30),
        (4096, 4096),
    ],
)
def test_parse_size(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "eight gigs", "8X", "-1G", "0", 0, -5])
def test_parse_size_refuses_nonsense(text):
    with pytest.raises(InvalidArgumentError, match="size"):
        parse_size(text)


def test_format_size():
    assert format_size(512) == "512 B"
    assert format_size(3 << 30) == "3.0 GiB"


def test_small_sets_are_searched_exactly():
    choice = choose_index(9_724, 10, "ip")
    assert choice.spec == "Flat" and "exact" in choice.reason


def test_a_latency_target_moves_the_exact_threshold():
    assert choose_index(200_000, 64, "cosine").spec == "HNSW32"
    assert choose_index(200_000, 64, "cosine", max_latency_ms=10).spec == "Flat"


def test_inner_product_gets_augmented_ivf_and_other_metrics_a_graph_until_millions():
    assert choose_index(1_000_000, 64, "ip").spec == "IVF1024,PQ33x4fs,RFlat"  # 64 + 1 dims
    assert choose_index(1_000_000, 64, "cosine").spec == "HNSW32"
    assert choose_index(10_000_000, 64, "ip").spec == "IVF4096,PQ33x4fs,RFlat"
    assert choose_index(HNSW_MAX_VECTORS + 1, 64, "l2").spec.endswith("PQ32x4fs,RFlat")
    assert choose_index(1_000_000_000, 64, "ip").spec.startswith(f"IVF{ivf_lists(10**9)}_HNSW32")


def test_the_budget_picks_the_most_accurate_kind_that_fits():
    n, d = 1_000_000, 64
    roomy = choose_index(n, d, "cosine", max_memory=parse_size("8G"))
    tight = choose_index(n, d, "cosine", max_memory=parse_size("100M"))
    tighter = choose_index(n, d, "cosine", max_memory=parse_size("30M"))
    assert roomy.spec == "HNSW32"
    assert tight.memory_bytes <= parse_size("100M") < roomy.memory_bytes
    assert tighter.memory_bytes <= parse_size("30M") < tight.memory_bytes
    assert [c["fits"] for c in tight.considered][-1] is True
    assert not any(c["fits"] for c in tight.considered[:-1])


def test_an_impossible_budget_is_refused_with_the_smallest_need():
    with pytest.raises(InvalidArgumentError, match="no index kind holds 1,000,000 x 64") as exc:
        choose_index(1_000_000, 64, "ip", max_memory=parse_size("1M"))
    assert "needs about" in str(exc.value) and "--max-memory" in str(exc.value)


def test_an_explicit_spec_over_budget_is_refused_before_training():
    vectors = np.random.default_rng(0).standard_normal((5000, 32)).astype(np.float32)
    with pytest.raises(InvalidArgumentError, match="more than the memory budget"):
        VectorIndex.build(vectors, "l2", "HNSW32", max_memory=parse_size("1M"))


def test_ivf_lists_keep_enough_training_points():
    for n in (1_000, 50_000, 1_000_000, 100_000_000):
        nlist = ivf_lists(n)
        assert nlist & (nlist - 1) == 0 and (nlist == 16 or nlist * 39 <= n)
    assert ivf_lists(1_000_000) == 1024
