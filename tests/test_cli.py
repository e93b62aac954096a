"""The `embrecall` command, end to end on files written by the tests."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from embrecall.cli import main
from embrecall.demo.data import write_demo_data


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_demo_data(tmp_path_factory.mktemp("data"), n_users=80, n_movies=300)


@pytest.fixture(scope="module")
def artifact(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("out") / "artifact"
    code = main(
        [
            "build",
            "--items",
            str(data.items),
            "--users",
            str(data.users),
            "--catalog",
            str(data.catalog),
            "--interactions",
            str(data.interactions),
            "--out",
            str(out),
            "-q",
        ]
    )
    assert code == 0
    return out


def _json(capsys, argv):
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_recommend_json_shape_and_seen_excluded(artifact, data, capsys):
    out = _json(capsys, ["recommend", str(artifact), "1", "-k", "30", "--json"])
    assert (
        out["query"] == "recommend" and out["id"] == 1 and out["k"] == 30 and out["metric"] == "ip"
    )
    assert len(out["results"]) == 30
    assert set(out["results"][0]) == {"id", "score", "title", "genres"}
    scores = [r["score"] for r in out["results"]]
    assert scores == sorted(scores, reverse=True)
    import pandas as pd

    ratings = pd.read_csv(data.interactions)
    seen = set(ratings.loc[ratings.userId == 1, "movieId"])
    assert not seen & {r["id"] for r in out["results"]}
    with_seen = _json(
        capsys, ["recommend", str(artifact), "1", "-k", "30", "--json", "--include-seen"]
    )
    assert seen & {r["id"] for r in with_seen["results"]}


def test_similar_commands_and_exclude(artifact, capsys):
    items = _json(
        capsys, ["similar-items", str(artifact), str(_first_item(artifact)), "-k", "5", "--json"]
    )
    ids = [r["id"] for r in items["results"]]
    assert len(ids) == 5 and _first_item(artifact) not in ids and items["metric"] == "cosine"
    fewer = _json(
        capsys,
        [
            "similar-items",
            str(artifact),
            str(_first_item(artifact)),
            "-k",
            "5",
            "--json",
            "--exclude",
            f"{ids[0]},{ids[1]}",
        ],
    )
    assert not {ids[0], ids[1]} & {r["id"] for r in fewer["results"]} and len(fewer["results"]) == 5
    users = _json(capsys, ["similar-users", str(artifact), "2", "-k", "4", "--json"])
    assert len(users["results"]) == 4 and 2 not in [r["id"] for r in users["results"]]
    assert set(users["results"][0]) == {"id", "score"}


def test_table_output_has_rank_id_score_title_genres(artifact, capsys):
    assert main(["recommend", str(artifact), "1", "-k", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["rank", "id", "score", "title", "genres"]
    assert len(lines) == 2 + 3 and lines[2].split()[0] == "1"


def test_inspect(artifact, capsys):
    assert main(["inspect", str(artifact)]) == 0
    text = capsys.readouterr().out
    assert "items" in text and "recommend" in text and "ip on Flat" in text and "catalog" in text
    info = _json(capsys, ["inspect", str(artifact), "--json"])
    assert info["spaces"]["items"]["count"] == 300 and info["format_version"] == 1


def test_build_with_ann_index_and_metric_override(data, tmp_path, capsys):
    out = tmp_path / "ann"
    assert (
        main(
            [
                "build",
                "--items",
                str(data.items),
                "--users",
                str(data.users),
                "--out",
                str(out),
                "-q",
                "--similar-items-index",
                "HNSW16",
                "--similar-users-metric",
                "l2",
            ]
        )
        == 0
    )
    info = _json(capsys, ["inspect", str(out), "--json"])
    assert info["queries"]["similar_items"]["kind"] == "IndexHNSWFlat"
    assert info["queries"]["similar_users"]["metric"] == "l2"
    params = _json(
        capsys,
        [
            "similar-items",
            str(out),
            str(_first_item(out)),
            "-k",
            "3",
            "--json",
            "--ef-search",
            "200",
        ],
    )
    assert len(params["results"]) == 3


@pytest.mark.parametrize(
    "argv, message",
    [
        (["recommend", "{a}", "999999"], "unknown user id 999999"),
        (["similar-items", "{a}", "abc"], "is not an integer"),
        (["recommend", "{a}", "1", "-k", "0"], "k must be a positive integer"),
        (["recommend", "{t}/missing", "1"], "no artifact directory"),
        (["build", "--items", "{t}/nope.csv", "--out", "{t}/x"], "nope.csv"),
    ],
)
def test_bad_input_gives_one_line_and_nonzero_exit(artifact, tmp_path, argv, message):
    argv = [a.format(a=artifact, t=tmp_path) for a in argv]
    proc = subprocess.run(
        [sys.executable, "-m", "embrecall", *argv], capture_output=True, text=True
    )
    assert proc.returncode != 0
    assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert "Traceback" not in proc.stderr


def test_build_refuses_to_overwrite_without_force(artifact, data, capsys):
    argv = ["build", "--items", str(data.items), "--out", str(artifact), "-q"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "already exists (pass --force to replace it)" in err and "overwrite" not in err
    assert main([*argv, "--force", "--users", str(data.users)]) == 0


def test_build_skips_bad_rows_on_request(data, tmp_path, capsys):
    bad = tmp_path / "items.csv"
    lines = data.items.read_text().splitlines()
    lines[3] = '999999,"[1.0, not-a-number]"'
    bad.write_text("\n".join(lines) + "\n")
    assert main(["build", "--items", str(bad), "--out", str(tmp_path / "a"), "-q"]) == 1
    assert "line 4" in capsys.readouterr().err
    assert (
        main(
            [
                "build",
                "--items",
                str(bad),
                "--out",
                str(tmp_path / "b"),
                "-q",
                "--on-bad-row",
                "skip",
            ]
        )
        == 0
    )
    assert "skipped 1 bad row of items (line 4): features is not" in capsys.readouterr().err


def _first_item(artifact) -> int:
    return int(np.load(artifact / "items" / "ids.npy")[0])
