"""Catalog: reading MovieLens and generic files, JSON-safe lookups, id kinds, parquet round trip."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from embrecall.catalog import Catalog, read_catalog
from embrecall.errors import DuplicateIdError, InputFormatError, InvalidArgumentError

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "movielens"

# A small movies.dat in the ml-1m layout: accented titles, colons inside titles.
MOVIES_DAT = (
    "1::Toy Story (1995)::Animation|Children's|Comedy\n"
    "29::City of Lost Children, The (Cité des enfants perdus, La) (1995)::Adventure|Sci-Fi\n"
    "73::Misérables, Les (1995)::Drama|Musical\n"
    "829::Crow: City of Angels, The (1996)::Action|Thriller\n"
    "\n"
)
MOVIES_CSV = (
    "movieId,title,genres\n"
    "1,Toy Story (1995),Adventure|Animation|Children|Comedy|Fantasy\n"
    '11,"American President, The (1995)",Comedy|Drama|Romance\n'
    '29,"City of Lost Children, The (Cité des enfants perdus, La) (1995)",Adventure|Drama\n'
    "182715,NA,(no genres listed)\n"
)
JSON_TYPES = (str, int, float, bool, type(None))


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


@pytest.fixture
def movies_dat(tmp_path: Path) -> Path:
    return write(tmp_path / "movies.dat", MOVIES_DAT, "iso-8859-1")


@pytest.fixture
def movies_csv(tmp_path: Path) -> Path:
    return write(tmp_path / "movies.csv", MOVIES_CSV)


# -- MovieLens movies.dat --------------------------------------------------------------------
def test_movies_dat_in_iso_8859_1_decodes_accents(movies_dat: Path) -> None:
    cat = read_catalog(movies_dat)
    assert len(cat) == 4
    assert cat.columns == ["title", "genres"]
    assert cat.id_column == "movieId"
    assert cat.id_kind == "int"
    assert cat.record(73) == {"title": "Misérables, Les (1995)", "genres": "Drama|Musical"}
    assert "Cité des enfants perdus, La" in cat.record(29)["title"]


def test_movies_dat_keeps_colons_in_titles_and_genres_as_text(movies_dat: Path) -> None:
    cat = read_catalog(movies_dat)
    assert cat.record(829) == {
        "title": "Crow: City of Angels, The (1996)",
        "genres": "Action|Thriller",
    }
    assert cat.record(1)["genres"] == "Animation|Children's|Comedy"


def test_movies_dat_title_holding_double_colon_stays_whole(tmp_path: Path) -> None:
    path = write(tmp_path / "movies.dat", "5::Foo::Bar (2000)::Drama\n")
    assert read_catalog(path).record(5) == {"title": "Foo::Bar (2000)", "genres": "Drama"}


def test_movies_dat_in_utf8_and_crlf_also_reads(tmp_path: Path) -> None:
    path = write(tmp_path / "movies.dat", MOVIES_DAT.replace("\n", "\r\n"), "utf-8")
    cat = read_catalog(path)
    assert cat.record(73)["title"] == "Misérables, Les (1995)"
    assert cat.record(73)["genres"] == "Drama|Musical"


def test_movies_dat_with_wrong_declared_encoding_names_encoding_and_line(
    movies_dat: Path,
) -> None:
    with pytest.raises(InputFormatError, match=r"not valid utf-8 at line 2.*encoding="):
        read_catalog(movies_dat, encoding="utf-8")


def test_movies_dat_malformed_line_names_line(tmp_path: Path) -> None:
    path = write(tmp_path / "movies.dat", "1::A (1995)::Drama\n2::B (1996)::Comedy\n3::C only\n")
    with pytest.raises(InputFormatError, match=r"line 3: expected MovieID::Title::Genres"):
        read_catalog(path)


def test_movies_dat_non_integer_id_names_line(tmp_path: Path) -> None:
    path = write(tmp_path / "movies.dat", "1::A (1995)::Drama\nx7::B (1996)::Comedy\n")
    with pytest.raises(InputFormatError, match=r"line 2: movie id 'x7' is not an integer"):
        read_catalog(path)


def test_movies_dat_duplicate_id_names_id_and_lines(tmp_path: Path) -> None:
    path = write(tmp_path / "movies.dat", "1::A::Drama\n2::B::Drama\n1::C::Drama\n")
    with pytest.raises(DuplicateIdError, match=r"duplicate id 1 at line 1 and line 3"):
        read_catalog(path)


def test_movies_dat_refuses_an_id_column(movies_dat: Path) -> None:
    with pytest.raises(InputFormatError, match="fixed columns"):
        read_catalog(movies_dat, id_column="item")


# -- MovieLens movies.csv and generic CSV ----------------------------------------------------
def test_movies_csv_keeps_quoted_commas(movies_csv: Path) -> None:
    cat = read_catalog(movies_csv)
    assert cat.id_column == "movieId"
    assert cat.columns == ["title", "genres"]
    assert cat.record(11) == {
        "title": "American President, The (1995)",
        "genres": "Comedy|Drama|Romance",
    }
    assert cat.record(29)["title"].startswith("City of Lost Children, The (Cité")


def test_csv_only_empty_cells_are_missing(movies_csv: Path) -> None:
    assert read_catalog(movies_csv).record(182715) == {
        "title": "NA",
        "genres": "(no genres listed)",
    }


def test_csv_picks_a_known_id_column_anywhere(tmp_path: Path) -> None:
    path = write(tmp_path / "items.csv", "name,Item_ID,price\nfoo,a1,2.5\nbar,b2,\n")
    cat = read_catalog(path)
    assert cat.id_column == "Item_ID"
    assert cat.id_kind == "str"
    assert cat.records(["b2", "a1"]) == [
        {"name": "bar", "price": None},
        {"name": "foo", "price": 2.5},
    ]


def test_csv_falls_back_to_first_column_and_honours_id_column(tmp_path: Path) -> None:
    path = write(tmp_path / "items.csv", "sku,name,code\n10,foo,x\n20,bar,y\n")
    assert read_catalog(path).id_column == "sku"
    cat = read_catalog(path, id_column="code")
    assert cat.id_column == "code"
    assert cat.record("y") == {"sku": 20, "name": "bar"}


def test_csv_missing_id_column_names_it_and_the_columns_found(tmp_path: Path) -> None:
    path = write(tmp_path / "items.csv", "sku,name\n1,foo\n")
    with pytest.raises(InputFormatError, match=r"no id column 'item'.*'sku', 'name'"):
        read_catalog(path, id_column="item")


def test_tab_separated_file_reads(tmp_path: Path) -> None:
    path = write(tmp_path / "items.tsv", "item_id\ttitle\n1\tA, with comma\n2\tB\n")
    assert read_catalog(path).record(1) == {"title": "A, with comma"}


def test_csv_in_latin1_without_encoding_says_which_encoding_failed(tmp_path: Path) -> None:
    path = write(tmp_path / "movies.csv", "movieId,title\n1,Toy Story\n2,Misérables\n", "latin-1")
    with pytest.raises(InputFormatError, match=r"not valid utf-8 at line 3.*encoding="):
        read_catalog(path)
    assert read_catalog(path, encoding="latin-1").record(2) == {"title": "Misérables"}


def test_unknown_encoding_is_refused(movies_csv: Path) -> None:
    with pytest.raises(InputFormatError, match="unknown encoding 'klingon'"):
        read_catalog(movies_csv, encoding="klingon")


def test_csv_duplicate_id_names_id_and_lines_despite_blank_lines(tmp_path: Path) -> None:
    path = write(tmp_path / "m.csv", "movieId,title\n1,A\n\n2,B\n1,C\n")
    with pytest.raises(DuplicateIdError, match=r"duplicate id 1 at line 2 and line 5"):
        read_catalog(path)


def test_csv_empty_id_names_line(tmp_path: Path) -> None:
    path = write(tmp_path / "m.csv", "movieId,title\n1,A\n,B\n")
    with pytest.raises(InputFormatError, match=r"line 3: empty id \(movieId\)"):
        read_catalog(path)


@pytest.mark.parametrize(
    ("name", "text"),
    [("empty.csv", ""), ("blank.csv", "\n\n  \n"), ("empty.dat", ""), ("header.csv", "id,t\n")],
)
def test_empty_files_are_refused(tmp_path: Path, name: str, text: str) -> None:
    with pytest.raises(InputFormatError, match="empty|no rows"):
        read_catalog(write(tmp_path / name, text))


def test_missing_file_and_bad_format_are_refused(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_catalog(tmp_path / "nope.csv")
    with pytest.raises(ValueError, match="format must be one of"):
        read_catalog(tmp_path / "nope.csv", format="xlsx")  # type: ignore[arg-type]


def test_zero_padded_ids_stay_strings_until_converted(tmp_path: Path) -> None:
    cat = read_catalog(write(tmp_path / "m.csv", "id,t\n007,a\n8,b\n"))
    assert cat.id_kind == "str"
    assert cat.record("007") == {"t": "a"}
    as_int = cat.with_id_kind("int")
    assert as_int.id_kind == "int"
    assert as_int.ids.tolist() == [7, 8]
    assert as_int.record(7) == {"t": "a"}


# -- lookups ---------------------------------------------------------------------------------
def test_records_align_with_ids_and_unknown_ids_get_empty_dicts(movies_csv: Path) -> None:
    cat = read_catalog(movies_csv)
    out = cat.records(np.array([11, 999, 1, 11], dtype=np.int64))
    assert [r.get("title") for r in out] == [
        "American President, The (1995)",
        None,
        "Toy Story (1995)",
        "American President, The (1995)",
    ]
    assert out[1] == {}
    assert cat.records([]) == []
    assert cat.records(["1", " 11 ", "x", None, True]) == [
        cat.record(1),
        cat.record(11),
        {},
        {},
        {},
    ]
    misses = cat.records([998, 999])
    misses[0]["x"] = 1
    assert misses[1] == {}  # every miss is its own dict


def test_records_are_json_safe(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "title": ["a", None],
            "year": np.array([1995, 2001], dtype=np.int32),
            "score": [np.float32(0.5), np.nan],
            "big": [np.inf, 1.0],
            "flag": [np.bool_(True), False],
            "released": pd.to_datetime(["1995-11-22", None]),
            "day": [dt.date(2000, 1, 2), dt.date(2001, 3, 4)],
            "tags": [["x", "y"], []],
        },
        index=pd.Index([1, 2], name="movieId"),
    )
    cat = Catalog(frame)
    rec1, rec2 = cat.records([1, 2])
    assert rec1 == {
        "title": "a",
        "year": 1995,
        "score": 0.5,
        "big": None,
        "flag": True,
        "released": "1995-11-22T00:00:00",
        "day": "2000-01-02",
        "tags": ["x", "y"],
    }
    assert rec2["title"] is None and rec2["score"] is None and rec2["released"] is None
    for rec in (rec1, rec2):
        json.dumps(rec, allow_nan=False)
        for key, value in rec.items():
            assert type(value) in JSON_TYPES or key == "tags"
    assert all(type(v) is str for v in rec1["tags"])


def test_records_take_a_single_sequence_not_a_string(movies_csv: Path) -> None:
    with pytest.raises(TypeError, match="record\\(\\)"):
        read_catalog(movies_csv).records("11")  # type: ignore[arg-type]


# -- id kinds --------------------------------------------------------------------------------
def test_with_id_kind_str_and_back(movies_csv: Path) -> None:
    cat = read_catalog(movies_csv)
    assert cat.with_id_kind("int") is cat
    as_str = cat.with_id_kind("str")
    assert as_str.id_kind == "str"
    assert as_str.ids.tolist() == ["1", "11", "29", "182715"]
    assert as_str.record("11") == cat.record(11)
    assert as_str.record(11) == cat.record(11)  # integers are looked up as their text
    back = as_str.with_id_kind("int")
    assert back.ids.tolist() == [1, 11, 29, 182715]


def test_with_id_kind_int_refuses_text_ids_and_merged_ids() -> None:
    cat = Catalog(pd.DataFrame({"t": ["a", "b"]}, index=pd.Index(["12", "tt0114709"])))
    with pytest.raises(InputFormatError, match="'tt0114709' is not an integer"):
        cat.with_id_kind("int")
    padded = Catalog(pd.DataFrame({"t": ["a", "b"]}, index=pd.Index(["7", "007"])))
    with pytest.raises(DuplicateIdError, match="duplicate id 7"):
        padded.with_id_kind("int")
    with pytest.raises(ValueError, match="kind must be"):
        cat.with_id_kind("float")  # type: ignore[arg-type]


# -- finding by title -------------------------------------------------------------------------
def test_find_matches_text_in_titles_ignoring_case(movies_csv: Path) -> None:
    cat = read_catalog(movies_csv)
    assert cat.find("(1995)").tolist() == [1, 11, 29]  # catalog order; parentheses are text
    assert cat.find("the (1995)").tolist() == [11]
    assert cat.find("CITÉ").tolist() == [29]  # case folded beyond ASCII
    assert cat.find("toy story").tolist() == [1]
    assert cat.find(".*").tolist() == []  # no pattern syntax: no title holds ".*"
    assert cat.find("na").tolist() == [182715]  # the title "NA" is text, not missing


def test_find_picks_the_title_column_and_refuses_what_it_cannot_search() -> None:
    frame = pd.DataFrame(
        {"Title": ["Alien", None], "year": [1979, 1986]}, index=pd.Index(["a", "b"], name="id")
    )
    cat = Catalog(frame)
    assert cat.find("ALIEN").tolist() == ["a"]  # a missing title matches nothing
    assert cat.find("86", column="year").tolist() == ["b"]
    with pytest.raises(InvalidArgumentError, match="empty"):
        cat.find("")
    with pytest.raises(InvalidArgumentError, match="no column 'name'"):
        cat.find("x", column="name")
    untitled = Catalog(pd.DataFrame({"genres": ["Drama"]}, index=pd.Index([1], name="id")))
    with pytest.raises(InvalidArgumentError, match="no title column"):
        untitled.find("x")


# -- construction from a DataFrame ------------------------------------------------------------
def test_catalog_from_frame() -> None:
    frame = pd.DataFrame({"title": ["A", "B"]}, index=pd.Index([10, 20], name="item"))
    cat = Catalog(frame)
    assert (len(cat), cat.id_column, cat.id_kind, cat.columns) == (2, "item", "int", ["title"])
    assert cat.record(20) == {"title": "B"}
    pd.testing.assert_frame_equal(cat.frame, frame, check_dtype=False)
    assert "n=2" in repr(cat)


def test_catalog_from_frame_refuses_bad_input() -> None:
    with pytest.raises(DuplicateIdError, match="duplicate id 'a' at rows 1 and 3"):
        Catalog(pd.DataFrame({"t": [1, 2, 3]}, index=pd.Index(["a", "b", "a"])))
    with pytest.raises(InputFormatError, match="no rows"):
        Catalog(pd.DataFrame({"t": []}, index=pd.Index([], dtype=np.int64)))
    with pytest.raises(InputFormatError, match="integers or strings"):
        Catalog(pd.DataFrame({"t": [1, 2]}, index=pd.Index([1.5, 2.5])))
    with pytest.raises(InputFormatError, match="all integers or all strings"):
        Catalog(pd.DataFrame({"t": [1, 2]}, index=pd.Index([1, "a"], dtype=object)))
    with pytest.raises(TypeError, match="DataFrame"):
        Catalog({"t": [1]})  # type: ignore[arg-type]


def test_catalog_ids_are_read_only(movies_csv: Path) -> None:
    ids = read_catalog(movies_csv).ids
    with pytest.raises(ValueError):
        ids[0] = 5


# -- parquet -------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["int", "str"])
def test_parquet_round_trip(movies_csv: Path, tmp_path: Path, kind: str) -> None:
    cat = read_catalog(movies_csv).with_id_kind(kind)  # type: ignore[arg-type]
    path = tmp_path / "catalog.parquet"
    cat.to_parquet(path)
    back = Catalog.from_parquet(path)
    assert back.id_kind == kind  # "1" stays text, even though it looks like an integer
    assert back.id_column == "movieId"
    assert back.columns == cat.columns
    assert back.ids.tolist() == cat.ids.tolist()
    assert back.records(cat.ids) == cat.records(cat.ids)
    meta = json.loads(pq.read_schema(path).metadata[b"embrecall.catalog"])
    assert meta == {"format_version": 1, "id_column": "movieId", "id_kind": kind}
    assert read_catalog(path).records([cat.ids[0]]) == cat.records([cat.ids[0]])


def test_generic_parquet_and_a_spark_style_directory(tmp_path: Path) -> None:
    table = pa.table({"name": ["x", "y", "z"], "item_id": pa.array([3, 1, 2], pa.int32())})
    pq.write_table(table, tmp_path / "items.parquet")
    cat = read_catalog(tmp_path / "items.parquet")
    assert (cat.id_column, cat.id_kind, cat.columns) == ("item_id", "int", ["name"])
    assert cat.record(1) == {"name": "y"}
    folder = tmp_path / "spark_out"
    folder.mkdir()
    pq.write_table(table.slice(0, 2), folder / "part-00000.parquet")
    pq.write_table(table.slice(2), folder / "part-00001.parquet")
    assert read_catalog(folder).records([2, 3]) == [{"name": "z"}, {"name": "x"}]


def test_parquet_with_null_id_or_other_version_is_refused(tmp_path: Path) -> None:
    pq.write_table(pa.table({"id": [1, None], "t": ["a", "b"]}), tmp_path / "n.parquet")
    with pytest.raises(InputFormatError, match="row 2: empty id"):
        read_catalog(tmp_path / "n.parquet")
    table = pa.table({"id": [1], "t": ["a"]}).replace_schema_metadata(
        {b"embrecall.catalog": b'{"format_version": 99, "id_column": "id"}'}
    )
    pq.write_table(table, tmp_path / "v.parquet")
    with pytest.raises(InputFormatError, match="format version 99"):
        Catalog.from_parquet(tmp_path / "v.parquet")


def test_not_parquet_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputFormatError, match="not a readable parquet"):
        read_catalog(write(tmp_path / "x.parquet", "id,t\n1,a\n"))


# -- real MovieLens files (skipped when ../shared/data is absent) --------------------------
def real(name: str) -> Path:
    path = DATA / name
    if not path.exists():
        pytest.skip(f"{path} is not available")
    return path


def test_real_ml1m_movies_dat() -> None:
    cat = read_catalog(real("ml-1m/movies.dat"))
    assert len(cat) == 3883
    assert cat.record(1) == {"title": "Toy Story (1995)", "genres": "Animation|Children's|Comedy"}
    assert cat.record(73)["title"] == "Misérables, Les (1995)"
    assert cat.record(1176)["title"] == (
        "Double Life of Veronique, The (La Double Vie de Véronique) (1991)"
    )
    titles = [r["title"] for r in cat.records(cat.ids)]
    assert not any("\ufffd" in t or "Ã" in t for t in titles)  # no mojibake
    assert sum(any(ord(c) > 127 for c in t) for t in titles) == 50


def test_real_ml_latest_small_movies_csv() -> None:
    cat = read_catalog(real("ml-latest-small/movies.csv"))
    assert len(cat) == 9742
    assert cat.id_kind == "int"
    assert cat.record(11)["title"] == "American President, The (1995)"
    assert cat.record(29)["title"] == (
        "City of Lost Children, The (Cité des enfants perdus, La) (1995)"
    )
    assert all(isinstance(r["genres"], str) for r in cat.records(cat.ids))
    json.dumps(cat.records(cat.ids[:100]), allow_nan=False)
