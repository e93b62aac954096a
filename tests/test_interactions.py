"""Interactions and SeenItems: readers, bad input, and the CSR against a brute-force oracle."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from embrecall.embeddings import Embeddings
from embrecall.errors import InputFormatError
from embrecall.interactions import Interactions, SeenItems, read_interactions

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "movielens"

RATINGS_CSV = (
    "userId,movieId,rating,timestamp\n"
    "1,1,4.0,964982703\n"
    "1,3,4.5,964981247\n"
    "2,3,0.5,964982224\n"
    "7,50,5.0,964983815\n"
)
RATINGS_DAT = "1::1193::5::978300760\n1::661::3::978302109\n2::1193::4::978298413\n"


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def embeddings(ids, seed: int = 0) -> Embeddings:
    """Random vectors for the given ids (the search is not under test here)."""
    rng = np.random.default_rng(seed)
    return Embeddings(np.asarray(ids), rng.standard_normal((len(ids), 4)))


def brute_force(
    users: list, items: list, user_emb: Embeddings, item_emb: Embeddings
) -> tuple[list[list[int]], int, int]:
    """Seen item rows per user row with Python sets and dicts, and the dropped counts."""
    user_row = {u: r for r, u in enumerate(user_emb.ids.tolist())}
    item_row = {i: r for r, i in enumerate(item_emb.ids.tolist())}
    seen: list[set[int]] = [set() for _ in range(len(user_emb))]
    for u, i in zip(users, items, strict=True):
        if u in user_row and i in item_row:
            seen[user_row[u]].add(item_row[i])
    dropped_users = sum(u not in user_row for u in users)
    dropped_items = sum(i not in item_row for i in items)
    return [sorted(s) for s in seen], dropped_users, dropped_items


def as_lists(seen: SeenItems) -> list[list[int]]:
    return [seen.rows_for(u).tolist() for u in range(seen.n_users)]


# -- readers ---------------------------------------------------------------------------------
def test_movielens_ratings_csv(tmp_path: Path) -> None:
    inter = read_interactions(write(tmp_path / "ratings.csv", RATINGS_CSV))
    assert len(inter) == 4
    assert inter.users.dtype == np.int64 and inter.items.dtype == np.int64
    assert inter.users.tolist() == [1, 1, 2, 7]
    assert inter.items.tolist() == [1, 3, 3, 50]
    assert inter.ratings.dtype == np.float64
    assert inter.ratings.tolist() == [4.0, 4.5, 0.5, 5.0]
    assert inter.timestamps.dtype == np.int64
    assert inter.timestamps[0] == 964982703
    assert "n=4" in repr(inter)


def test_movielens_ratings_dat(tmp_path: Path) -> None:
    inter = read_interactions(write(tmp_path / "ratings.dat", RATINGS_DAT))
    assert inter.users.tolist() == [1, 1, 2]
    assert inter.items.tolist() == [1193, 661, 1193]
    assert inter.ratings.tolist() == [5.0, 3.0, 4.0]
    assert inter.timestamps.tolist() == [978300760, 978302109, 978298413]


def test_ratings_dat_without_timestamp(tmp_path: Path) -> None:
    inter = read_interactions(write(tmp_path / "r.dat", "1::10::3\n2::20::4\n"))
    assert inter.items.tolist() == [10, 20]
    assert inter.ratings.tolist() == [3.0, 4.0]
    assert inter.timestamps is None


def test_generic_csv_with_named_columns_and_string_ids(tmp_path: Path) -> None:
    path = write(tmp_path / "events.csv", "ts,sku,who,score\n5,A1,u9,1\n6,B2,u8,0\n")
    inter = read_interactions(path, user_column="who", item_column="sku")
    assert inter.users.dtype == object and inter.users.tolist() == ["u9", "u8"]
    assert inter.items.tolist() == ["A1", "B2"]
    assert inter.ratings is None and inter.timestamps is None
    scored = read_interactions(path, user_column="who", item_column="sku", rating_column="score")
    assert scored.ratings.tolist() == [1.0, 0.0]


def test_generic_csv_default_columns_any_case(tmp_path: Path) -> None:
    path = write(tmp_path / "e.tsv", "User_ID\tITEM_ID\textra\n3\t4\tx\n")
    inter = read_interactions(path)
    assert (inter.users.tolist(), inter.items.tolist()) == ([3], [4])


def test_zero_padded_ids_stay_strings(tmp_path: Path) -> None:
    inter = read_interactions(write(tmp_path / "r.csv", "user_id,item_id\n1,007\n2,8\n"))
    assert inter.users.tolist() == [1, 2]
    assert inter.items.tolist() == ["007", "8"]


def test_parquet_with_typed_columns(tmp_path: Path) -> None:
    table = pa.table(
        {
            "user_id": pa.array([1, 2], pa.int32()),
            "item_id": ["a", "b"],
            "rating": pa.array([1, 5], pa.int8()),
            "timestamp": pa.array([0, 86_400_000], pa.timestamp("ms")),
        }
    )
    pq.write_table(table, tmp_path / "r.parquet")
    inter = read_interactions(tmp_path / "r.parquet")
    assert inter.users.tolist() == [1, 2] and inter.users.dtype == np.int64
    assert inter.items.tolist() == ["a", "b"]
    assert inter.ratings.tolist() == [1.0, 5.0]
    assert inter.timestamps.tolist() == [0, 86_400]


def test_parquet_bad_columns_are_refused(tmp_path: Path) -> None:
    pq.write_table(pa.table({"user": [1], "item": [2], "rating": ["good"]}), tmp_path / "a.pq")
    with pytest.raises(InputFormatError, match="rating has type string; expected numbers"):
        read_interactions(tmp_path / "a.pq")
    pq.write_table(pa.table({"user": [1, None], "item": [2, 3]}), tmp_path / "b.pq")
    with pytest.raises(InputFormatError, match=r"row 2: empty user id \(user\)"):
        read_interactions(tmp_path / "b.pq")
    pq.write_table(pa.table({"person": [1], "item": [2]}), tmp_path / "c.pq")
    with pytest.raises(InputFormatError, match=r"no user column.*'person', 'item'"):
        read_interactions(tmp_path / "c.pq")


# -- bad input -------------------------------------------------------------------------------
def test_missing_column_names_it_and_the_columns_found(tmp_path: Path) -> None:
    path = write(tmp_path / "r.csv", "userId,title\n1,x\n")
    with pytest.raises(InputFormatError, match=r"no item column \(looked for movieId.*'title'"):
        read_interactions(path)
    with pytest.raises(InputFormatError, match=r"no user column 'uid'; columns: 'userId', 'title'"):
        read_interactions(path, user_column="uid", item_column="title")
    with pytest.raises(InputFormatError, match=r"no rating column 'stars'"):
        read_interactions(path, item_column="title", rating_column="stars")


def test_non_numeric_rating_names_line_and_value(tmp_path: Path) -> None:
    text = RATINGS_CSV + "\n8,9,great,964983815\n"  # after a blank line: line 7
    expected = r"line 7: rating \(rating\) 'great' is not a number"
    with pytest.raises(InputFormatError, match=expected):
        read_interactions(write(tmp_path / "r.csv", text))


def test_empty_cells_name_their_line(tmp_path: Path) -> None:
    with pytest.raises(InputFormatError, match=r"line 3: empty rating"):
        read_interactions(write(tmp_path / "a.csv", "userId,movieId,rating\n1,2,3\n1,3,\n"))
    with pytest.raises(InputFormatError, match=r"line 2: empty user id \(userId\)"):
        read_interactions(write(tmp_path / "b.csv", "userId,movieId\n,2\n"))


def test_non_integer_timestamp_names_line(tmp_path: Path) -> None:
    text = "userId,movieId,timestamp\n1,2,3\n1,3,2020-01-01\n"
    with pytest.raises(InputFormatError, match=r"line 3: timestamp .* is not an integer"):
        read_interactions(write(tmp_path / "r.csv", text))


@pytest.mark.parametrize("text", ["", "\n \n", "userId,movieId\n"])
def test_empty_files_are_refused(tmp_path: Path, text: str) -> None:
    with pytest.raises(InputFormatError, match="empty|no interactions"):
        read_interactions(write(tmp_path / "r.csv", text))


def test_bad_encoding_says_which_and_suggests_encoding(tmp_path: Path) -> None:
    path = write(tmp_path / "r.csv", "user,item\nJosé,1\nAnn,2\n", "latin-1")
    with pytest.raises(InputFormatError, match=r"not valid utf-8.*encoding="):
        read_interactions(path)
    assert read_interactions(path, encoding="latin-1").users.tolist() == ["José", "Ann"]
    with pytest.raises(InputFormatError, match=r"not valid cp1252"):
        read_interactions(
            write(tmp_path / "b.csv", "user,item\n\x81,1\n", "latin-1"), encoding="cp1252"
        )


def test_malformed_ratings_dat_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputFormatError, match=r"line 2: expected fields separated by '::'"):
        read_interactions(write(tmp_path / "a.dat", "1::2::3::4\n1:x:2::3::4\n"))
    with pytest.raises(InputFormatError, match="Expected 7 columns"):
        read_interactions(write(tmp_path / "b.dat", "1::2::3::4\n1::2::3\n"))
    with pytest.raises(InputFormatError, match=r"line 1: expected UserID::MovieID"):
        read_interactions(write(tmp_path / "c.dat", "1::2::3::4::5::6\n"))
    with pytest.raises(InputFormatError, match="fixed columns"):
        read_interactions(write(tmp_path / "d.dat", RATINGS_DAT), user_column="uid")


def test_interactions_constructor_validates() -> None:
    with pytest.raises(InputFormatError, match=r"item ids have shape \(1,\), expected \(2,\)"):
        Interactions([1, 2], [3])
    with pytest.raises(InputFormatError, match="not finite"):
        Interactions([1, 2], [3, 4], ratings=[1.0, np.nan])
    with pytest.raises(InputFormatError, match="all integers or all strings, found int, str"):
        Interactions(np.array([1, "a"], dtype=object), [3, 4])
    with pytest.raises(InputFormatError, match="timestamps must be integers"):
        Interactions([1], [3], timestamps=[1.5])
    inter = Interactions(["a"], [3], timestamps=np.array(["1970-01-02"], dtype="datetime64[D]"))
    assert inter.timestamps.tolist() == [86_400]


# -- SeenItems -------------------------------------------------------------------------------
def test_seen_items_map_sort_dedupe_and_count_unknowns() -> None:
    users = embeddings([7, 1, 2])  # rows 0, 1, 2: row order is not id order
    items = embeddings([50, 3, 1, 99])
    inter = Interactions([1, 1, 2, 7, 1, 404, 2], [3, 1, 3, 50, 3, 1, 77])
    seen = SeenItems.from_interactions(inter, users=users, items=items)
    assert seen.n_users == 3 and seen.n_items == 4
    assert as_lists(seen) == [[0], [1, 2], [1]]  # user 1 saw 3 twice: counted once
    assert seen.indptr.tolist() == [0, 1, 3, 4]
    assert seen.nnz == 4
    assert (seen.dropped_unknown_users, seen.dropped_unknown_items) == (1, 1)
    assert seen.indptr.dtype == np.int64 and seen.item_rows.dtype == np.int64


def test_seen_items_coerce_ids_to_the_embeddings_kind() -> None:
    str_users = embeddings(["1", "2"])
    int_items = embeddings([10, 20])
    inter = Interactions([2, 1, 3], ["010", "20", "x"])  # int users, text items
    seen = SeenItems.from_interactions(inter, users=str_users, items=int_items)
    assert as_lists(seen) == [[1], [0]]
    assert (seen.dropped_unknown_users, seen.dropped_unknown_items) == (1, 1)


def test_seen_items_refuse_a_total_mismatch() -> None:
    inter = Interactions([1, 2], [10, 20])
    with pytest.raises(InputFormatError, match="none of the item ids is in the item embeddings"):
        SeenItems.from_interactions(inter, users=embeddings([1, 2]), items=embeddings(["a"]))
    with pytest.raises(InputFormatError, match="none of the user ids"):
        SeenItems.from_interactions(inter, users=embeddings([5]), items=embeddings([10]))
    empty = SeenItems.from_interactions(
        Interactions([], []), users=embeddings([5]), items=embeddings([10])
    )
    assert (empty.n_users, empty.nnz) == (1, 0)


@settings(max_examples=150, deadline=None)
@given(
    user_ids=st.lists(st.integers(0, 30), min_size=1, max_size=12, unique=True),
    item_ids=st.lists(st.integers(0, 40), min_size=1, max_size=15, unique=True),
    pairs=st.lists(st.tuples(st.integers(0, 35), st.integers(0, 45)), max_size=80),
    items_as_text=st.booleans(),
    user_embeddings_as_text=st.booleans(),
)
def test_seen_items_match_brute_force(
    user_ids, item_ids, pairs, items_as_text, user_embeddings_as_text
) -> None:
    # Text item ids in the file against int embeddings, int user ids against text embeddings.
    emb_user_ids = [str(u) for u in user_ids] if user_embeddings_as_text else user_ids
    users, items = embeddings(emb_user_ids), embeddings(item_ids)
    file_users = [u for u, _ in pairs]
    file_items = [str(i) if items_as_text else i for _, i in pairs]
    inter = Interactions(file_users, file_items)
    users_in_emb_kind = [str(u) for u in file_users] if user_embeddings_as_text else file_users
    expected, drop_u, drop_i = brute_force(users_in_emb_kind, [i for _, i in pairs], users, items)
    if pairs and (drop_u == len(pairs) or drop_i == len(pairs)):
        with pytest.raises(InputFormatError):
            SeenItems.from_interactions(inter, users=users, items=items)
        return
    seen = SeenItems.from_interactions(inter, users=users, items=items)
    assert as_lists(seen) == expected
    assert (seen.dropped_unknown_users, seen.dropped_unknown_items) == (drop_u, drop_i)
    rebuilt = SeenItems(seen.indptr, seen.item_rows, n_items=len(items))
    assert as_lists(rebuilt) == expected


def test_seen_items_constructor_and_npy_round_trip(tmp_path: Path) -> None:
    seen = SeenItems([0, 2, 2, 3], [1, 4, 0], n_items=5)
    assert (seen.n_users, seen.nnz) == (3, 3)
    assert seen.rows_for(0).tolist() == [1, 4]
    assert seen.rows_for(1).tolist() == []
    np.save(tmp_path / "indptr.npy", seen.indptr)
    np.save(tmp_path / "item_rows.npy", seen.item_rows)
    back = SeenItems(np.load(tmp_path / "indptr.npy"), np.load(tmp_path / "item_rows.npy"))
    assert as_lists(back) == as_lists(seen)


@pytest.mark.parametrize(
    ("indptr", "rows", "message"),
    [
        ([1, 2], [0], "start with 0"),
        ([], [], "start with 0"),
        ([0, 2, 1, 3], [0, 1, 2], "decreases at user row 1"),
        ([0, 1], [0, 1], "ends at 1 but there are 2"),
        ([0, 1], [-1], "negative item row -1"),
        ([0, 1], [5], "item row 5 is out of range for 5 items"),
        ([0, 1, 3], [0, 2, 1], "user row 1 are not sorted and unique"),
        ([0, 3], [0, 1, 1], "user row 0 are not sorted and unique"),
        ([0, 1.0], [0], "indptr must hold integers"),
        ([[0, 1]], [0], "indptr must be 1-D"),
    ],
)
def test_seen_items_constructor_refuses_bad_csr(indptr, rows, message) -> None:
    with pytest.raises(InputFormatError, match=message):
        SeenItems(indptr, rows, n_items=5)


def test_seen_items_arrays_are_read_only_and_rows_checked() -> None:
    indptr = np.array([0, 1, 2])
    seen = SeenItems(indptr, np.array([3, 0]))
    assert indptr.flags.writeable  # the caller's array is left alone
    with pytest.raises(ValueError):
        seen.rows_for(0)[0] = 9
    with pytest.raises(IndexError, match="user row 2 is out of range"):
        seen.rows_for(2)
    with pytest.raises(IndexError):
        seen.rows_for(-1)
    with pytest.raises(TypeError):
        seen.rows_for(1.0)  # type: ignore[arg-type]
    assert "nnz=2" in repr(seen)


# -- real MovieLens ratings (skipped when ../shared/data is absent) --------------------------
def real(name: str) -> Path:
    path = DATA / name
    if not path.exists():
        pytest.skip(f"{path} is not available")
    return path


def test_real_ml_latest_small_ratings() -> None:
    path = real("ml-latest-small/ratings.csv")
    inter = read_interactions(path)
    assert len(inter) == 100_836
    assert len(np.unique(inter.users)) == 610
    assert inter.ratings.min() == 0.5 and inter.ratings.max() == 5.0
    movie_ids = pd.read_csv(real("ml-latest-small/movies.csv"), usecols=["movieId"])["movieId"]
    cold = set(movie_ids[:100])  # items the "model" never saw
    users = embeddings(np.unique(inter.users)[::-1])
    items = embeddings(movie_ids[100:].to_numpy())
    seen = SeenItems.from_interactions(inter, users=users, items=items)
    frame = pd.read_csv(path)
    warm = frame[~frame.movieId.isin(cold)]
    assert seen.dropped_unknown_users == 0
    assert seen.dropped_unknown_items == len(frame) - len(warm)
    assert seen.nnz == len(warm)  # ml-latest-small has no repeated (user, item) pair
    user_row = users.row_of(1)
    expected = sorted(items.rows_of(warm[warm.userId == 1].movieId.to_numpy()).tolist())
    assert seen.rows_for(user_row).tolist() == expected
