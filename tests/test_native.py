"""embrecall's optional C loops, and the id lookups that use them, against their Python paths."""

from __future__ import annotations

import numpy as np
import pytest

import embrecall.embeddings as embeddings_module
from embrecall.embeddings import Embeddings
from helpers import require_native


@pytest.fixture
def native():
    return require_native()


def test_bits_are_set_and_cleared_for_rows_inside_the_bitmap_only(native):
    bitmap = np.zeros(4, dtype=np.uint8)  # rows 0..31
    rows = np.array([0, 9, 9, 31, 32, -1, 1 << 40, 17], dtype=np.int64)
    native.set_bits(bitmap, rows)
    want = np.zeros(32, dtype=np.uint8)
    want[[0, 9, 31, 17]] = 1
    np.testing.assert_array_equal(np.unpackbits(bitmap, bitorder="little"), want)
    native.clear_bits(bitmap, rows[:3])
    want[[0, 9]] = 0
    np.testing.assert_array_equal(np.unpackbits(bitmap, bitorder="little"), want)
    native.clear_bits(bitmap, rows)
    assert not bitmap.any()


def test_bits_refuse_what_is_not_a_byte_bitmap_or_int64_rows(native):
    bitmap = np.zeros(4, dtype=np.uint8)
    with pytest.raises(TypeError):
        native.set_bits(bitmap, np.array([1, 2], dtype=np.int32))
    with pytest.raises(TypeError):
        native.set_bits(np.zeros(4, dtype=np.int64), np.array([1], dtype=np.int64))
    with pytest.raises(BufferError):  # read-only
        native.set_bits(bytes(4), np.array([1], dtype=np.int64))
    with pytest.raises(ValueError):  # not contiguous
        native.set_bits(bitmap, np.arange(8, dtype=np.int64)[::2])


@pytest.mark.parametrize(
    "ids, ok",
    [
        ([], True),
        ([5, -3, 2**63 - 1, -(2**63), 2**64], True),  # beyond int64: not held
        ([1, True], False),  # bool is not an id
        ([1, 2.0], False),
        ([1, "2"], False),
        ([np.int64(4)], False),  # the general path reads numpy scalars
    ],
)
def test_a_list_of_exact_ints_is_looked_up_and_anything_else_declined(native, ids, ok):
    table = native.RowMap(np.array([5, 2**63 - 1, -3, 4], dtype=np.int64))
    out = np.full(len(ids), 7, dtype=np.int64)
    assert table.lookup_list(ids, out) is ok
    if ok:
        want = {5: 0, 2**63 - 1: 1, -3: 2}
        assert out.tolist() == [want.get(i, -1) for i in ids]
    assert table.lookup_list(ids, np.empty(len(ids) + 1, dtype=np.int64)) is False
    with pytest.raises(TypeError):
        table.lookup_list(tuple(ids), out)


@pytest.mark.parametrize(
    "ids",
    [
        [30, 3, 99, 3],
        [30, 2**70, -5],  # beyond int64: held by no index
        [30, True],
        [30, np.int64(3), "99"],
        ["x"],
        [297],
        [2**70],
        np.array([297, 4, 0], dtype=np.int64),
        np.array([297, 4], dtype=np.int32),
        np.array([], dtype=np.int64),
    ],
)
def test_the_c_id_table_answers_as_pandas_table_does(native, monkeypatch, ids):
    ids_held = np.arange(0, 300, 3)
    vectors = np.eye(100, 4, dtype=np.float32) + 1
    with_c = Embeddings(ids_held, vectors)
    monkeypatch.setattr(embeddings_module, "native", None)
    with_pandas = Embeddings(ids_held, vectors)
    assert type(with_c._rows_by_id) is native.RowMap
    assert type(with_pandas._rows_by_id) is not native.RowMap

    def answers(space):
        out = []
        for call in (space.lookup_rows, space.rows_of):
            try:
                out.append(call(ids).tolist())
            except Exception as exc:  # the same error either way
                out.append((type(exc), str(exc)))
        if len(ids) == 1:
            try:
                out.append(space.row_of(ids[0]))
            except Exception as exc:
                out.append((type(exc), str(exc)))
        return out

    assert answers(with_c) == answers(with_pandas)


def test_the_c_id_table_holds_a_million_ids_and_counts_repeats_once(native):
    rng = np.random.default_rng(4)
    ids = rng.choice(2**62, 1_000_000, replace=False).astype(np.int64) - 2**61
    table = native.RowMap(ids)
    assert len(table) == len(ids)
    rows = np.empty(len(ids), dtype=np.int64)
    table.lookup(ids, rows)
    np.testing.assert_array_equal(rows, np.arange(len(ids)))
    absent = ids[:1000] + 1
    absent = absent[~np.isin(absent, ids)]
    out = np.empty(len(absent), dtype=np.int64)
    table.lookup(absent, out)
    assert (out == -1).all()
    repeated = native.RowMap(np.array([7, 7, 8, 7], dtype=np.int64))
    assert len(repeated) == 2 and repeated.get(7) == 0 and repeated.get(8) == 2
