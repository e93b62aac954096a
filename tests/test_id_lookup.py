"""id -> row lookups: every form of id a caller may pass finds the same rows."""

from __future__ import annotations

import pickle
from dataclasses import replace

import faiss
import numpy as np
import pytest

from embrecall.embeddings import Embeddings
from embrecall.errors import InputFormatError, UnknownIdError
from embrecall.index.faiss_index import _clean_rows
from embrecall.index.structure import parameter_maker
from embrecall.queries import QueryKind, _slug

VECTORS = np.arange(12, dtype=np.float32).reshape(4, 3) + 1


@pytest.fixture
def int_space():
    return Embeddings([40, 10, 30, 2**62], VECTORS)


@pytest.fixture
def str_space():
    return Embeddings(["b", "a", "10", "c"], VECTORS)


@pytest.mark.parametrize(
    "ids",
    [
        [10, 99, 40],
        np.array([10, 99, 40], dtype=np.int64),
        np.array([10, 99, 40], dtype=np.int32),
        [np.int64(10), np.int32(99), 40],
        ["10", " 99", 40],
        (10, 99, 40),
    ],
)
def test_int_ids_of_every_form_find_the_same_rows(int_space, ids):
    assert int_space.lookup_rows(ids).tolist() == [1, -1, 0]


def test_one_int_id_in_every_form(int_space):
    for one in ([30], [np.int64(30)], ["30"], np.array([30]), [2**62]):
        assert int_space.lookup_rows(one).tolist() == [2 if one != [2**62] else 3]
    assert int_space.lookup_rows([7]).tolist() == [-1]
    assert int_space.lookup_rows([-1]).tolist() == [-1]  # the reserved id is never held


@pytest.mark.parametrize("huge", [2**63, -(2**63) - 1, 2**200])
def test_ids_beyond_int64_are_unknown_not_an_overflow(int_space, huge):
    assert int_space.lookup_rows([huge]).tolist() == [-1]
    assert int_space.lookup_rows([10, huge]).tolist() == [1, -1]
    assert np.array(int_space.lookup_rows(np.array([2**64 - 1], dtype=np.uint64))).tolist() == [-1]
    with pytest.raises(UnknownIdError) as err:
        int_space.rows_of([10, huge])
    assert err.value.ids == [huge]
    assert not int_space.contains(huge)


def test_non_integers_are_refused_for_int_ids(int_space):
    for bad in ([True], [10, True], ["ten"], [1.5], [10, "x"]):
        with pytest.raises(InputFormatError):
            int_space.lookup_rows(bad)
    assert not int_space.contains("ten")


def test_string_ids(str_space):
    assert str_space.lookup_rows(["a", "zz", "b"]).tolist() == [1, -1, 0]
    assert str_space.lookup_rows(np.array(["c", "a"])).tolist() == [3, 1]
    assert str_space.lookup_rows([10]).tolist() == [2]  # read as the text "10"
    assert str_space.lookup_rows(["zz"]).tolist() == [-1]
    assert str_space.contains("c") and not str_space.contains("d")
    with pytest.raises(UnknownIdError, match="'zz'"):
        str_space.rows_of(["a", "zz"])


def test_embeddings_pickle_with_their_lookup(int_space, str_space):
    for space in (int_space, str_space):
        copy = pickle.loads(pickle.dumps(space))
        assert copy.ids.tolist() == space.ids.tolist()
        assert copy.lookup_rows(list(space.ids[::-1])).tolist() == [3, 2, 1, 0]


def test_cached_query_kind_names_equal_the_computed_ones():
    kind = QueryKind("similar_items", "items", "items", "cosine", "IVF64,PQ8x4fs")
    assert kind.index_name == f"items-cosine-{_slug('IVF64,PQ8x4fs')}"
    assert (kind.exclusion, kind.excludes_self, kind.excludes_seen) == ("self", True, False)
    other = replace(kind, spec="HNSW32")  # a new kind computes its own
    assert other.index_name == "items-cosine-HNSW32"
    assert kind == QueryKind("similar_items", "items", "items", "cosine", "IVF64,PQ8x4fs")


def test_clean_rows_keeps_sorted_rows_and_sorts_the_rest():
    assert _clean_rows(np.array([1, 4, 9]), 10).tolist() == [1, 4, 9]
    assert _clean_rows([9, 1, 4, 1, -3, 12], 10).tolist() == [1, 4, 9]
    assert _clean_rows(np.array([-1, 3, 10]), 10).tolist() == [3]
    assert _clean_rows(None, 10).tolist() == []


@pytest.mark.parametrize("spec", ["Flat", "IVF4,Flat", "HNSW8", "PCA8,IVF4,Flat", "IVF4,PQ4,RFlat"])
def test_parameter_maker_builds_what_each_index_kind_takes(spec):
    index = faiss.index_factory(16, spec)
    make = parameter_maker(index)
    sel = faiss.IDSelectorNot(faiss.IDSelectorBatch(np.array([1, 2], dtype=np.int64)))
    params = {"nprobe": 3, "efSearch": 20, "k_factor": 2}
    plain, selected = make(params, None), make(params, sel)
    if spec == "Flat":
        assert plain is None and selected.sel is not None
        return
    inner = selected
    while inner is not None:
        assert inner.sel is not None  # every layer filters
        if isinstance(inner, faiss.SearchParametersIVF):
            assert inner.nprobe == 3
        if isinstance(inner, faiss.SearchParametersHNSW):
            assert inner.efSearch == 20
        if isinstance(inner, faiss.IndexRefineSearchParameters):
            assert inner.k_factor == 2
        inner = getattr(inner, "index_params", None) or getattr(inner, "base_index_params", None)
    assert plain is not None
