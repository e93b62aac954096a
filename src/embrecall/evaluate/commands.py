"""The ``embrecall eval`` and ``embrecall train`` commands: parse, call the library, print.

``cli.py`` registers them with ``add_commands(subparsers)``; each sets ``run`` to a function of
the parsed arguments that returns the exit status, and raises ``EmbrecallError`` for cli.py to
turn into a one-line message.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from embrecall.errors import InvalidArgumentError


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register ``eval`` and ``train`` on the ``embrecall`` command's subparsers."""
    e = subparsers.add_parser(
        "eval",
        help="recall of each index against exact search; with --test, recommendation quality",
        description="Measure an artifact: recall@k of every query kind's index against exact "
        "search (with single-query latency) and, given held-out interactions, HitRate/Recall/"
        "NDCG@K and coverage of recommend next to a popularity baseline.",
    )
    e.add_argument("artifact", metavar="ARTIFACT")
    e.add_argument(
        "-k",
        default="10,50,100",
        type=_int_list,
        help="cut-offs for index recall, comma-separated (default 10,50,100)",
    )
    e.add_argument(
        "--queries",
        type=int,
        default=200,
        help="ids sampled per query kind for index recall (default 200)",
    )
    e.add_argument(
        "--query-kind",
        action="append",
        choices=("recommend", "similar_items", "similar_users"),
        help="measure only this query kind (repeatable; default all)",
    )
    e.add_argument("--nprobe", type=int, help="IVF lists to visit (approximate indexes)")
    e.add_argument("--ef-search", type=int, help="HNSW efSearch (approximate indexes)")
    e.add_argument(
        "--sweep",
        action="store_true",
        help="also sweep nprobe / efSearch to draw a recall-latency curve",
    )
    e.add_argument("--no-index-recall", action="store_true", help="skip the index recall part")
    e.add_argument(
        "--test",
        metavar="INTERACTIONS",
        help="held-out interactions (e.g. test.parquet from `embrecall train`): also "
        "measure recommendation quality; the artifact must hold the training part "
        "as seen items",
    )
    e.add_argument(
        "--quality-k",
        default="1,5,10,20,50,100",
        type=_int_list,
        help="cut-offs for quality, comma-separated (default 1,5,10,20,50,100)",
    )
    e.add_argument(
        "--relevant-min-rating",
        type=float,
        help="count a held-out interaction as relevant only from this rating up",
    )
    e.add_argument("--plots", metavar="DIR", help="write PNG plots into DIR")
    e.add_argument("--seed", type=int, default=0, help="seed of the query sample (default 0)")
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.add_argument("--no-verify", action="store_true", help="skip checksum verification on load")
    e.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    e.set_defaults(run=run_eval)

    t = subparsers.add_parser(
        "train",
        help="split interactions by time, fit ALS embeddings, write them and an artifact",
        description="Split interactions by time (per user by default), fit implicit-feedback ALS "
        "on the training part, and write OUT/{user,item}_embedding.csv (Spark layout), "
        "OUT/train.parquet, OUT/test.parquet, OUT/artifact and OUT/experiment.json.",
    )
    t.add_argument(
        "interactions",
        metavar="INTERACTIONS",
        help="MovieLens ratings.csv / ratings.dat, or a user,item[,rating,timestamp] "
        "CSV or parquet",
    )
    t.add_argument("--out", required=True, help="directory to write")
    t.add_argument("--force", action="store_true", help="replace files of an earlier run in OUT")
    t.add_argument(
        "--holdout",
        default="0.2",
        type=_fraction_or_count,
        help="per user: a fraction (0.2) of each user's latest interactions or a count "
        "(1 = leave last out); global: the fraction after the cut-off (default 0.2)",
    )
    t.add_argument(
        "--split",
        choices=("per-user", "global"),
        default="per-user",
        help="per-user time split (default) or one global cut-off time",
    )
    t.add_argument(
        "--min-interactions",
        type=int,
        default=5,
        help="users with fewer interactions stay in training only (default 5)",
    )
    t.add_argument(
        "--no-split", action="store_true", help="train on everything, write no test part"
    )
    t.add_argument(
        "--backend",
        choices=("implicit", "spark"),
        default="implicit",
        help="ALS implementation (default implicit; spark needs pyspark and Java)",
    )
    t.add_argument("--factors", type=int, default=64, help="embedding dimension (default 64)")
    t.add_argument("--iterations", type=int, default=15, help="ALS sweeps (default 15)")
    t.add_argument("--regularization", type=float, default=8.0, help="L2 penalty (default 8)")
    t.add_argument(
        "--alpha",
        type=float,
        default=1.0,
        help="confidence of an observed pair: 1 + alpha * value (default 1)",
    )
    t.add_argument(
        "--weighting",
        choices=("binary", "rating"),
        default="binary",
        help="value of an observed pair: 1 (default) or its rating",
    )
    t.add_argument("--seed", type=int, default=0, help="seed of the factor initialisation")
    t.add_argument("--threads", type=int, default=0, help="worker threads (default 0: all cores)")
    t.add_argument("--catalog", help="item metadata for the artifact (movies.csv, CSV or parquet)")
    t.add_argument("--index", help="faiss factory string for the artifact's indexes (default Flat)")
    t.add_argument("--no-artifact", action="store_true", help="write the embeddings only")
    for name in ("user", "item", "rating", "timestamp"):
        t.add_argument(f"--{name}-column", help=f"{name} column of the interactions file")
    t.add_argument(
        "-q", "--quiet", action="store_true", help="print nothing on success, no progress bars"
    )
    t.set_defaults(run=run_train)


# -- eval ------------------------------------------------------------------------------------
def run_eval(args: argparse.Namespace) -> int:
    from embrecall import load
    from embrecall.evaluate.index_recall import measure_index_recall

    if args.no_index_recall and not args.test:
        raise InvalidArgumentError("nothing to do: --no-index-recall without --test")
    progress = False if (args.quiet or args.json) else None
    rec = load(args.artifact, verify=not args.no_verify)
    out: dict[str, Any] = {"artifact": str(Path(args.artifact).resolve())}
    points = []
    if not args.no_index_recall:
        params = {k: v for k, v in (("nprobe", args.nprobe), ("efSearch", args.ef_search)) if v}
        points = measure_index_recall(
            rec,
            ks=args.k,
            n_queries=args.queries,
            query_kinds=args.query_kind,
            params=params,
            sweep=args.sweep,
            seed=args.seed,
            progress=progress,
        )
        out["index_recall"] = [p.to_dict() for p in points]
    report = None
    if args.test:
        from embrecall.evaluate.quality import evaluate_quality
        from embrecall.interactions import read_interactions

        report = evaluate_quality(
            rec,
            read_interactions(args.test),
            ks=args.quality_k,
            relevant_min_rating=args.relevant_min_rating,
            progress=progress,
        )
        out["quality"] = {"test": args.test, **report.to_dict()}
    plots = _write_plots(args.plots, points, report) if args.plots else []
    if plots:
        out["plots"] = [str(p) for p in plots]
    if args.json:
        print(json.dumps(out, indent=2, default=_json_default))
        return 0
    if points:
        print(recall_table(points))
    if report is not None:
        if points:
            print()
        print(quality_table(report, args.test))
    for path in plots:
        print(f"wrote {path}")
    return 0


def recall_table(points) -> str:
    """Index recall as a text table, one line per (query kind, setting, k)."""
    from embrecall.display import table

    rows = [
        [
            p.query_kind,
            f"{p.spec} ({p.metric})",
            _params(p.params),
            str(p.k),
            f"{p.recall:.4f}",
            f"{p.recall_min:.2f}",
            f"{p.p50_ms:.3f}",
            f"{p.p99_ms:.3f}",
        ]
        for p in points
    ]
    header = ["query kind", "index", "params", "k", "recall", "min", "p50 ms", "p99 ms"]
    title = (
        f"index recall against exact search ({points[0].queries} sampled ids per query kind, "
        "same exclusions; latency of single queries)"
    )
    return title + "\n" + table(header, rows, right_aligned={3, 4, 5, 6, 7})


def quality_table(report, test: str) -> str:
    """Recommendation quality as a text table, model and popularity side by side per K."""
    from embrecall.display import table

    info = report.info
    rows = [
        [
            r.method,
            str(r.k),
            f"{r.hit_rate:.4f}",
            f"{r.recall:.4f}",
            f"{r.ndcg:.4f}",
            f"{r.coverage:.4f}",
        ]
        for r in sorted(report.rows, key=lambda r: (r.k, r.method != "model"))
    ]
    header = ["method", "K", "HitRate", "Recall", "NDCG", "coverage"]
    title = (
        f"recommendation quality on {test}: {info['users']} users, {info['relevant']} relevant "
        f"held-out interactions ({info['relevant_unknown_items']} of items the model does not "
        f"know); seen-in-train items excluded; coverage of {info['items']} items"
    )
    return title + "\n" + table(header, rows, right_aligned={1, 2, 3, 4, 5})


def _write_plots(folder: str, points, report) -> list[Path]:
    from embrecall.evaluate.plots import plot_hit_rate, plot_recall_latency

    written = []
    root = Path(folder)
    if points:
        for k in sorted({p.k for p in points}):
            written.append(plot_recall_latency(points, root / f"recall_latency_at_{k}.png", k=k))
    if report is not None:
        written.append(plot_hit_rate(report, root / "hit_rate_at_k.png"))
    return written


# -- train -----------------------------------------------------------------------------------
def run_train(args: argparse.Namespace) -> int:
    from embrecall.evaluate.experiment import run_experiment
    from embrecall.interactions import read_interactions

    progress = False if args.quiet else None
    interactions = read_interactions(
        args.interactions,
        user_column=args.user_column,
        item_column=args.item_column,
        rating_column=args.rating_column,
        timestamp_column=args.timestamp_column,
    )
    catalog = None
    if args.catalog:
        from embrecall.catalog import read_catalog

        catalog = read_catalog(args.catalog)
    als = {
        "factors": args.factors,
        "iterations": args.iterations,
        "regularization": args.regularization,
        "alpha": args.alpha,
        "weighting": args.weighting,
        "backend": args.backend,
        "seed": args.seed,
        "threads": args.threads,
    }
    exp = run_experiment(
        interactions,
        args.out,
        split=not args.no_split,
        holdout=args.holdout,
        strategy=args.split.replace("-", "_"),
        min_interactions=args.min_interactions,
        als=als,
        artifact=not args.no_artifact,
        catalog=catalog,
        index=args.index,
        overwrite=args.force,
        progress=progress,
    )
    if args.quiet:
        return 0
    split = exp.record["split"]
    if split:
        print(
            f"split {split['interactions']} interactions of {split['users']} users "
            f"({split['strategy']}, holdout {split['holdout']}): {split['train_interactions']} "
            f"train, {split['test_interactions']} test of {split['test_users']} users"
        )
    print(
        f"trained ALS ({args.backend}, {args.factors} factors) on {exp.record['users']} users "
        f"x {exp.record['items']} items in {exp.record['seconds']['train']:.1f}s"
    )
    for path in (exp.users, exp.items, exp.train, exp.test, exp.artifact):
        if path is not None:
            print(f"wrote {path}")
    if exp.artifact is not None and exp.test is not None:
        print(f"next: embrecall eval {exp.artifact} --test {exp.test}")
    return 0


# -- argument types and helpers --------------------------------------------------------------
def _int_list(text: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def _fraction_or_count(text: str) -> float | int:
    try:
        value: float | int = float(text) if any(c in text for c in ".eE") else int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a fraction like 0.2 or a count like 1, got {text!r}"
        ) from None
    if isinstance(value, float) and not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"a fraction must be between 0 and 1, got {text}")
    if isinstance(value, int) and value < 1:
        raise argparse.ArgumentTypeError(f"a count must be at least 1, got {text}")
    return value


def _params(params: dict[str, int]) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items()) or "-"


def _json_default(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else str(value)
