"""read_embeddings: format detection and argument checks."""

from __future__ import annotations

import gzip
import logging

import numpy as np
import pytest

from embrecall.errors import InputFormatError
from embrecall.io import FORMATS, detect_format, read_embeddings


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("e.csv", "spark_csv"),
        ("E.CSV.GZ", "spark_csv"),
        ("e.parquet", "parquet"),
        ("e.pq", "parquet"),
        ("e.npy", "npy"),
        ("e.txt", "word2vec"),
        ("e.vec", "word2vec"),
        ("e.w2v", "word2vec"),
        ("e.vec.gz", "word2vec"),
    ],
)
def test_detect_by_suffix(tmp_path, name, expected):
    path = tmp_path / name
    path.write_bytes(b"")
    assert detect_format(path) == expected


def test_detect_by_content(tmp_path, make_data, write_csv, write_pq, write_w2v):
    ids, vectors = make_data(3, 2)
    assert detect_format(write_w2v(tmp_path / "model", ["a", "b", "c"], vectors)) == "word2vec"
    assert detect_format(write_csv(tmp_path / "factors", ids, vectors)) == "spark_csv"
    assert detect_format(write_pq(tmp_path / "table", ids, vectors)) == "parquet"
    np.save(tmp_path / "arr.npy", vectors)
    (tmp_path / "arr.npy").rename(tmp_path / "arr")
    assert detect_format(tmp_path / "arr") == "npy"
    with gzip.open(tmp_path / "zipped", "wt") as f:
        f.write("3 2\na 1 2\n")
    assert detect_format(tmp_path / "zipped") == "word2vec"


def test_detect_directory(tmp_path, make_data, write_pq):
    ids, vectors = make_data(3, 2)
    (tmp_path / "out").mkdir()
    write_pq(tmp_path / "out" / "part-0.parquet", ids, vectors)
    assert detect_format(tmp_path / "out") == "parquet"


def test_unknown_format_names_path_and_formats(tmp_path):
    path = tmp_path / "mystery.bin"
    path.write_bytes(b"\x00\x01\x02 binary stuff")
    with pytest.raises(InputFormatError) as info:
        read_embeddings(path)
    message = str(info.value)
    assert str(path) in message
    assert all(fmt in message for fmt in FORMATS)


def test_explicit_format_overrides_suffix(tmp_path, make_data, write_w2v):
    _, vectors = make_data(2, 2)
    path = write_w2v(tmp_path / "e.csv", ["a", "b"], vectors)
    assert list(read_embeddings(path, "word2vec").ids) == ["a", "b"]


def test_argument_checks(tmp_path, make_data, write_csv):
    ids, vectors = make_data(2, 2)
    path = write_csv(tmp_path / "e.csv", ids, vectors)
    with pytest.raises(ValueError, match="format must be"):
        read_embeddings(path, "excel")
    with pytest.raises(ValueError, match="on_bad_row must be"):
        read_embeddings(path, on_bad_row="ignore")
    with pytest.raises(ValueError, match="id_type must be"):
        read_embeddings(path, id_type="uuid")
    with pytest.raises(ValueError, match="ids= is for the npy format only"):
        read_embeddings(path, ids=[1, 2])
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_embeddings(tmp_path / "absent.csv")


def test_logs_timings_and_never_prints(tmp_path, make_data, write_csv, caplog, capsys):
    ids, vectors = make_data(2, 2)
    with caplog.at_level(logging.INFO, logger="embrecall"):
        read_embeddings(write_csv(tmp_path / "e.csv", ids, vectors))
    assert any("2 rows x 2 dims" in r.getMessage() for r in caplog.records)
    assert capsys.readouterr() == ("", "")
