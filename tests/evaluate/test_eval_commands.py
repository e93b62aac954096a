"""`embrecall train` and `embrecall eval` end to end, through the argparse commands."""

from __future__ import annotations

import argparse
import json

import pandas as pd
import pytest
from eval_data import planted_interactions

from embrecall.cli import main
from embrecall.evaluate.commands import add_commands
from helpers import import_extra


@pytest.fixture(scope="module")
def ratings(tmp_path_factory):
    inter, _, _ = planted_interactions(n_users=120, n_items=200, seed=6)
    path = tmp_path_factory.mktemp("data") / "ratings.csv"
    pd.DataFrame(
        {
            "userId": inter.users,
            "movieId": inter.items,
            "rating": inter.ratings,
            "timestamp": inter.timestamps,
        }
    ).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def run_dir(ratings, tmp_path_factory):
    import_extra("implicit")
    out = tmp_path_factory.mktemp("run") / "exp"
    assert (
        main(
            [
                "train",
                str(ratings),
                "--out",
                str(out),
                "--factors",
                "16",
                "--iterations",
                "8",
                "--threads",
                "1",
                "-q",
            ]
        )
        == 0
    )
    return out


def test_train_writes_embeddings_split_artifact_and_record(run_dir):
    names = {p.name for p in run_dir.iterdir()}
    assert names == {
        "user_embedding.csv",
        "item_embedding.csv",
        "train.parquet",
        "test.parquet",
        "artifact",
        "experiment.json",
    }
    record = json.loads((run_dir / "experiment.json").read_text())
    assert record["split"]["strategy"] == "per_user" and record["als"]["factors"] == 16
    test = pd.read_parquet(run_dir / "test.parquet")
    train = pd.read_parquet(run_dir / "train.parquet")
    assert list(test.columns) == ["user_id", "item_id", "rating", "timestamp"]
    assert len(test) == record["split"]["test_interactions"]
    assert (
        train.groupby("user_id").timestamp.max().loc[test.user_id.unique()]
        <= test.groupby("user_id").timestamp.min()
    ).all()


def test_eval_prints_recall_and_quality_tables(run_dir, capsys):
    code = main(
        [
            "eval",
            str(run_dir / "artifact"),
            "--test",
            str(run_dir / "test.parquet"),
            "--queries",
            "20",
            "-k",
            "10",
            "--quality-k",
            "5,10",
            "-q",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "index recall against exact search (20 sampled ids" in out
    assert "recommendation quality on" in out and "popularity" in out
    kinds = ("recommend ", "similar_")
    recall_lines = [line for line in out.splitlines() if line.startswith(kinds)]
    assert len(recall_lines) == 3 and all("1.0000" in line for line in recall_lines)


def test_eval_json_and_plots(run_dir, tmp_path, capsys):
    import_extra("matplotlib")
    plots = tmp_path / "plots"
    code = main(
        [
            "eval",
            str(run_dir / "artifact"),
            "--test",
            str(run_dir / "test.parquet"),
            "--queries",
            "10",
            "-k",
            "10,20",
            "--json",
            "--plots",
            str(plots),
        ]
    )
    data = json.loads(capsys.readouterr().out)
    assert code == 0
    assert {p["k"] for p in data["index_recall"]} == {10, 20}
    rows = {(r["method"], r["k"]): r for r in data["quality"]["rows"]}
    assert rows[("model", 10)]["hit_rate"] > rows[("popularity", 10)]["hit_rate"]
    written = sorted(p.name for p in plots.iterdir())
    assert written == ["hit_rate_at_k.png", "recall_latency_at_10.png", "recall_latency_at_20.png"]
    assert all((plots / name).read_bytes()[:4] == b"\x89PNG" for name in written)
    order = ("recall_latency_at_10.png", "recall_latency_at_20.png", "hit_rate_at_k.png")
    assert data["plots"] == [str(plots / name) for name in order]


def test_train_refuses_to_overwrite_and_errors_are_one_line(run_dir, ratings, tmp_path, capsys):
    assert main(["train", str(ratings), "--out", str(run_dir), "-q"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("embrecall: error: ") and "--force" in err and err.count("\n") == 1
    no_time = tmp_path / "no_time.csv"
    pd.DataFrame({"user": [1, 2], "item": [3, 4]}).to_csv(no_time, index=False)
    assert main(["train", str(no_time), "--out", str(tmp_path / "x"), "-q"]) == 1
    assert "needs timestamps" in capsys.readouterr().err
    assert main(["eval", str(tmp_path / "missing")]) == 1
    assert "no artifact directory" in capsys.readouterr().err
    assert main(["eval", str(run_dir / "artifact"), "--no-index-recall"]) == 1
    assert "nothing to do" in capsys.readouterr().err


def test_bad_numbers_are_refused_by_argparse(capsys):
    for argv in (
        ["eval", "a", "-k", "0"],
        ["eval", "a", "-k", "x"],
        ["train", "r", "--out", "o", "--holdout", "1.5"],
        ["train", "r", "--out", "o", "--holdout", "0"],
    ):
        with pytest.raises(SystemExit):
            main(argv)
    assert "expected" in capsys.readouterr().err


def test_no_split_trains_on_everything_and_writes_no_test(ratings, tmp_path):
    import_extra("implicit")
    out = tmp_path / "all"
    assert (
        main(
            [
                "train",
                str(ratings),
                "--out",
                str(out),
                "--no-split",
                "--no-artifact",
                "--factors",
                "4",
                "--iterations",
                "2",
                "-q",
            ]
        )
        == 0
    )
    assert not (out / "test.parquet").exists() and not (out / "artifact").exists()
    users = pd.read_csv(out / "user_embedding.csv")
    assert len(users) == 120 and len(json.loads(users["features"][0])) == 4


def test_add_commands_plugs_into_a_parser_like_cli_py():
    parser = argparse.ArgumentParser(prog="embrecall")
    sub = parser.add_subparsers(dest="command", required=True)
    add_commands(sub)
    args = parser.parse_args(["eval", "ART", "-k", "10,50", "--sweep"])
    assert args.k == [10, 50] and args.sweep and callable(args.run)
    args = parser.parse_args(
        ["train", "r.csv", "--out", "o", "--holdout", "1", "--split", "global"]
    )
    assert args.holdout == 1 and isinstance(args.holdout, int) and callable(args.run)
    assert args.split == "global"
