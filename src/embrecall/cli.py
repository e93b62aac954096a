"""The `embrecall` command: parse arguments, call the library, print. No search logic here."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from embrecall import __version__
from embrecall.errors import EmbrecallError

QUERY_COMMANDS = {
    "recommend": (
        "recommend",
        "USER_ID",
        "top-k items for a user (seen items excluded when interactions were loaded)",
    ),
    "similar-items": ("similar_items", "ITEM_ID", "items most like an item"),
    "similar-users": ("similar_users", "USER_ID", "users most like a user"),
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.verbose:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logger = logging.getLogger("embrecall")
    level = logger.level
    if getattr(args, "quiet", False) and not args.verbose:
        # -q: no warnings either. They go through the logger (faiss's own among them, see
        # index.native_output), which logging's last-resort handler would print.
        logger.setLevel(logging.ERROR)
    try:
        return args.run(args)
    except BrokenPipeError:
        # The reader went away (`embrecall recommend ... | head -2`): it has what it wanted.
        # Point stdout at /dev/null so that the interpreter's final flush does not fail too.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except EmbrecallError as exc:
        print(f"embrecall: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        text = f"{exc.strerror}: {exc.filename}" if exc.strerror and exc.filename else str(exc)
        print(f"embrecall: error: {text}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        logger.setLevel(level)  # main() is also called in-process (tests, notebooks)


# -- commands --------------------------------------------------------------------------------
def _cmd_build(args: argparse.Namespace) -> int:
    from embrecall.artifact import ArtifactExistsError
    from embrecall.errors import ArtifactError

    try:
        return _build(args)
    except ArtifactExistsError as exc:  # the library's message names the Python keyword
        raise ArtifactError(f"{exc.path} already exists (pass --force to replace it)") from None


def _build(args: argparse.Namespace) -> int:
    from embrecall.options import BuildOptions
    from embrecall.pipeline import build

    specs = {
        name: spec
        for name, spec in (
            ("recommend", args.recommend_index or args.index),
            ("similar_items", args.similar_items_index or args.index),
            ("similar_users", args.similar_users_index or args.index),
        )
        if spec
    }
    metrics = {
        name: m
        for name, m in (
            ("recommend", args.recommend_metric),
            ("similar_items", args.similar_items_metric),
            ("similar_users", args.similar_users_metric),
        )
        if m
    }
    read_options = embedding_read_options(args)
    catalog_options = {"id_column": args.catalog_id_column} if args.catalog_id_column else None
    rec = build(
        args.items,
        args.users,
        out=args.out,
        catalog=args.catalog,
        interactions=args.interactions,
        user_catalog=args.user_catalog,
        options=BuildOptions(
            index=specs,
            metrics=metrics,
            max_memory=args.max_memory,
            max_latency_ms=args.max_latency_ms,
            target_recall=args.target_recall,
            tune_k=args.tune_k,
            mips=args.mips,
            progress=None if not args.quiet else False,
            race=not args.no_race,
        ),
        read_options=read_options,
        catalog_options=catalog_options,
        overwrite=args.force,
    )
    for name, emb in (("items", rec.items), ("users", rec.users)):
        if emb is not None and emb.skipped:
            print(_skipped_text(name, emb), file=sys.stderr)
    if not args.quiet:
        print(f"wrote {args.out}")
        print(_inspect_text(rec.describe()))
    return 0


def embedding_read_options(args: argparse.Namespace) -> dict[str, Any]:
    """``read_embeddings`` options from the embedding-file flags (``build``, ``update``)."""
    options: dict[str, Any] = {
        "format": args.format,
        "on_bad_row": args.on_bad_row,
        "id_type": args.id_type,
    }
    if args.id_column:
        options["id_column"] = args.id_column
    if args.vector_column:
        options["vector_column"] = args.vector_column
    return options


def _cmd_query(args: argparse.Namespace) -> int:
    from embrecall import load
    from embrecall.display import query_output
    from embrecall.queries import EXCLUSIONS

    method, _, _ = QUERY_COMMANDS[args.command]
    rec = load(args.artifact, verify=not args.no_verify)
    kwargs: dict[str, Any] = {"k": args.k}
    if args.exclude:
        kwargs["exclude"] = [x for x in args.exclude.split(",") if x]
    if EXCLUSIONS[method] == "seen":
        kwargs["exclude_seen"] = not args.include_seen
    params = {
        name: value
        for name, value in (("nprobe", args.nprobe), ("efSearch", args.ef_search))
        if value
    }
    if params:
        kwargs["params"] = params
    if args.filter:
        kwargs["filter"] = args.filter
    answer = getattr(rec, method)(args.id, **kwargs)
    print(
        query_output(
            answer.to_records(),
            as_json=args.json,
            query=answer.query,
            id=rec.query_space(method).coerce_id(args.id),
            k=args.k,
            metric=answer.metric,
            score=answer.score,
            filter=answer.filter,
        )
    )
    return 0


def _cmd_inspect(args: argparse.Namespace) -> int:
    from embrecall import load

    info = load(args.artifact, verify=not args.no_verify).describe()
    print(json.dumps(info, indent=2, ensure_ascii=False) if args.json else _inspect_text(info))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from embrecall.demo import run_demo

    run_demo(
        out_dir=args.out_dir,
        movielens=args.movielens,
        embeddings=args.embeddings,
        user_ids=args.user,
        k=args.k,
    )
    return 0


# -- helpers ---------------------------------------------------------------------------------
def _skipped_text(name: str, emb) -> str:
    """E.g. "skipped 1 bad row of items (line 5)", "skipped 12 bad rows of users (lines 2, ...)"."""
    count = len(emb.skipped)
    unit = getattr(emb, "unit", "line")
    places = ", ".join(str(s.line) for s in emb.skipped[:10]) + (", ..." if count > 10 else "")
    if count == 1:
        return f"skipped 1 bad row of {name} ({unit} {places}): {emb.skipped[0].reason}"
    return f"skipped {count} bad rows of {name} ({unit}s {places})"


def _inspect_text(info: dict[str, Any]) -> str:
    lines = []
    if info.get("artifact"):
        lines.append(f"artifact        {info['artifact']}")
        lines.append(
            f"format          v{info['format_version']} "
            f"(embrecall {info['embrecall_version']}, created {info['created_at']})"
        )
    for name, space in info["spaces"].items():
        lines.append(f"{name:<15} {space['count']} x {space['dim']} ({space['id_kind']} ids)")
    for name, q in info["queries"].items():
        params = ", ".join(f"{k}={v}" for k, v in q["search_params"].items()) or "-"
        lines.append(
            f"{name:<15} {q['from']} -> {q['returns']}: {q['metric']} on {q['spec']} "
            f"({q['kind']}); params {params}"
        )
    shown = set()
    for q in info["queries"].values():
        if q["index"] not in shown:
            shown.add(q["index"])
            lines.extend(_index_lines(q))
    if info.get("catalog"):
        lines.append(
            f"catalog         {info['catalog']['count']} rows: "
            f"{', '.join(info['catalog']['columns'])}"
        )
    if info.get("seen"):
        lines.append(
            f"seen items      {info['seen']['interactions']} interactions "
            f"of {info['seen']['users']} users"
        )
    return "\n".join(lines)


def _index_lines(q: dict[str, Any]) -> list[str]:
    """What one index costs and why it is what it is: memory, transform, choice, tuning."""
    from embrecall.index.memory import format_size

    lines = [f"index           {q['index']}: {q['ntotal']} x {q['dim']}, {q['kind']}"]
    if q.get("memory_bytes") is not None:
        lines.append(
            f"  memory        {format_size(q['memory_bytes'])} "
            f"({q['bytes_per_vector']:g} bytes per vector)"
        )
    if q.get("mips"):
        lines.append(
            f"  inner product norm augmentation (max norm {q['mips']['max_norm']:.4g}, "
            f"searched as L2 in {q['mips']['index_dim']} dims)"
        )
    if q.get("choice"):
        lines.append(f"  chosen        {q['choice']['reason']}")
        race = q["choice"].get("race")
        for c in (race or {}).get("candidates", []):
            lines.append("  " + _race_line(c))
        if q["choice"].get("p50_ms_measured") is not None:
            lines.append(f"  at full size  {q['choice']['p50_ms_measured']:.3f} ms p50 measured")
    if q.get("tuning"):
        t = q["tuning"]
        params = ", ".join(f"{k}={v}" for k, v in t["params"].items()) or "-"
        verdict = "reached" if t["reached"] else "NOT reached"
        held_out = (
            f", {t['holdout_recall']:.3f} on {t['holdout_queries']} held out"
            + (
                f" (95% lower bound {t['holdout_bound']:.3f})"
                if t.get("holdout_bound") is not None
                else ""
            )
            if t.get("holdout_recall") is not None
            else ""
        )
        lines.append(
            f"  tuned         recall@{t['k']} {t['recall']:.3f} on {t['queries']} "
            f"{t['query_kind']} queries{held_out}, target {t['target_recall']} {verdict} "
            f"({params})"
        )
    return lines


def _race_line(c: dict[str, Any]) -> str:
    """One raced candidate: what it reached and how fast, or why it did not run."""
    from embrecall.index.memory import format_size

    mark = "*" if c.get("won") else " "
    head = f"{mark} {c['label']:<34} {c['spec']:<26}"
    if not c.get("fits"):
        return f"{head} needs {format_size(c['memory_bytes'])}: over the budget"
    if "p50_ms" not in c:
        return f"{head} not built: {c.get('error', '-')}"
    params = ", ".join(f"{k}={v}" for k, v in c.get("params", {}).items()) or "-"
    held = c.get("holdout_recall")
    return (
        f"{head} recall {c['recall']:.3f} (held out {'-' if held is None else f'{held:.3f}'}) "
        f"{c['p50_ms']:.3f} ms, ~{c['p50_ms_at_n']:.3f} ms at full size, "
        f"{format_size(c['memory_bytes'])} ({params})"
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="embrecall", description="Real-time embedding recall for recommender systems."
    )
    parser.add_argument("--version", action="version", version=f"embrecall {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log phase timings to stderr")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    b = sub.add_parser("build", help="read embeddings and write an artifact")
    b.add_argument(
        "--items", required=True, help="item embeddings (Spark CSV, parquet, .npy, word2vec text)"
    )
    b.add_argument("--users", help="user embeddings, same formats")
    b.add_argument(
        "--catalog", help="item metadata: MovieLens movies.dat/movies.csv, CSV or parquet"
    )
    b.add_argument(
        "--interactions",
        help="who has seen what: MovieLens ratings.csv/ratings.dat, CSV or parquet",
    )
    b.add_argument(
        "--user-catalog",
        help="user metadata for similar-users results and filters: ml-1m users.dat, CSV or parquet",
    )
    b.add_argument("--out", required=True, help="artifact directory to write")
    b.add_argument("--force", action="store_true", help="replace an existing artifact")
    b.add_argument(
        "--index",
        help="faiss factory string for every index, or auto (default: exact search when a "
        "scan fits --max-latency-ms, else the fastest of a race of candidate kinds tuned to "
        "--target-recall (0.95) on a sample of the vectors, within --max-memory; Flat is exact)",
    )
    b.add_argument(
        "--no-race",
        action="store_true",
        help="auto picks from the size alone, without racing candidates (a faster build)",
    )
    b.add_argument("--max-memory", metavar="SIZE", help="memory budget per index, e.g. 8G or 512M")
    b.add_argument(
        "--max-latency-ms",
        type=float,
        metavar="MS",
        help="single-query latency the automatic choice aims for (default 1)",
    )
    b.add_argument(
        "--target-recall",
        type=float,
        metavar="R",
        help="tune nprobe/efSearch to the smallest value reaching this recall@k (e.g. 0.95) "
        "against exact search on a sample of real queries; stored in the manifest",
    )
    b.add_argument(
        "--tune-k", type=int, default=10, metavar="K", help="k of the tuned recall (default 10)"
    )
    b.add_argument(
        "--mips",
        choices=("auto", "augment", "native"),
        default="auto",
        help="inner product on IVF indexes through the norm augmentation (auto: IVF kinds "
        "augmented, HNSW and flat kinds native)",
    )
    for name in ("recommend", "similar-items", "similar-users"):
        b.add_argument(f"--{name}-index", help=f"faiss factory string for {name}")
        b.add_argument(
            f"--{name}-metric", choices=("ip", "cosine", "l2"), help=f"metric for {name}"
        )
    b.add_argument(
        "--format", default="auto", choices=("auto", "spark_csv", "parquet", "npy", "word2vec")
    )
    b.add_argument("--id-column", help="id column of the embedding files (default id)")
    b.add_argument(
        "--vector-column", help="vector column of the embedding files (default features)"
    )
    b.add_argument(
        "--id-type",
        choices=("auto", "int", "str"),
        default="auto",
        help="ids of the embedding files: auto (default: integers if every id is one), int, or "
        "str (every id as text, e.g. when some ids are not integers)",
    )
    b.add_argument("--catalog-id-column", help="id column of the catalog")
    b.add_argument(
        "--on-bad-row",
        choices=("raise", "skip"),
        default="raise",
        help="stop at the first bad row (default) or skip and report bad rows",
    )
    b.add_argument(
        "-q", "--quiet", action="store_true", help="print nothing on success, no progress bar"
    )
    b.set_defaults(run=_cmd_build)

    for command, (_, id_name, help_text) in QUERY_COMMANDS.items():
        q = sub.add_parser(command, help=help_text)
        q.add_argument("artifact", metavar="ARTIFACT")
        q.add_argument("id", metavar=id_name)
        q.add_argument("-k", type=int, default=30, help="how many results (default 30)")
        q.add_argument(
            "--json", action="store_true", help="print one JSON object with a results list"
        )
        q.add_argument(
            "--exclude",
            help=f"comma-separated {'user' if command == 'similar-users' else 'item'} ids to "
            "leave out",
        )
        if command == "recommend":
            q.add_argument(
                "--include-seen", action="store_true", help="do not exclude the user's seen items"
            )
        q.add_argument(
            "--filter",
            action="append",
            metavar="EXPR",
            help="keep only results whose catalogue fields pass EXPR (repeatable, ANDed): "
            "FIELD=VALUE, FIELD=A|B, FIELD!=VALUE, FIELD>=N, FIELD<=N, FIELD>N, FIELD<N; "
            "e.g. --filter genres=Comedy --filter 'year>=2000'",
        )
        q.add_argument("--nprobe", type=int, help="IVF lists to visit (approximate indexes)")
        q.add_argument("--ef-search", type=int, help="HNSW efSearch (approximate indexes)")
        q.add_argument(
            "--no-verify", action="store_true", help="skip checksum verification on load"
        )
        q.set_defaults(run=_cmd_query)

    i = sub.add_parser("inspect", help="describe an artifact (verifies its checksums)")
    i.add_argument("artifact", metavar="ARTIFACT")
    i.add_argument("--json", action="store_true")
    i.add_argument("--no-verify", action="store_true")
    i.set_defaults(run=_cmd_inspect)

    d = sub.add_parser(
        "demo", help="run the whole flow on built-in data (or on MovieLens + Spark ALS files)"
    )
    d.add_argument(
        "--out-dir", help="where to write the data and artifact (default: a temporary folder)"
    )
    d.add_argument("--movielens", help="a MovieLens folder (movies.csv/.dat, ratings.csv/.dat)")
    d.add_argument(
        "--embeddings", help="a folder with *user*.csv and *item*.csv Spark ALS embeddings"
    )
    d.add_argument("--user", action="append", help="user id to show (repeatable)")
    d.add_argument("-k", type=int, default=10)
    d.set_defaults(run=_cmd_demo)

    # Commands of the optional parts register themselves; their heavy imports stay lazy.
    from embrecall.batch.commands import add_commands as add_batch_commands
    from embrecall.evaluate.commands import add_commands as add_eval_commands
    from embrecall.live.commands import add_commands as add_live_commands
    from embrecall.service.commands import add_commands as add_service_commands

    add_service_commands(sub)
    add_eval_commands(sub)
    add_batch_commands(sub)
    add_live_commands(sub)
    return parser


if __name__ == "__main__":
    sys.exit(main())
