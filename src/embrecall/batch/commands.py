"""The ``embrecall batch`` and ``embrecall cached`` commands: parse, call the library, print.

``cli.py`` registers them with ``add_commands(subparsers)``; each sets ``run`` to a function of
the parsed arguments that returns the exit status, and raises ``EmbrecallError`` for cli.py to
turn into a one-line message. Plans and estimates go to stderr, so that ``--json`` output on
stdout stays one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from embrecall.errors import InvalidArgumentError
from embrecall.queries import query_space, target_space

_QUERIES = {
    "recommend": "recommend",
    "similar-items": "similar_items",
    "similar-users": "similar_users",
}


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register ``batch`` and ``cached`` on the ``embrecall`` command's subparsers."""
    b = subparsers.add_parser(
        "batch",
        help="top-k for every user (and item) into Redis, SQLite or parquet",
        description="Compute top-k recommendations for every user (or a given list), and "
        "optionally similar items and similar users, with the same exclusions as online, and "
        "write them to a sink under a new version that becomes current in one atomic step. "
        "An interrupted run resumes where it stopped when started again.",
    )
    b.add_argument(
        "artifact",
        metavar="TARGET",
        help="an artifact, a version root (its current version, with its pending live "
        "changes) or a Milvus target",
    )
    b.add_argument(
        "--out",
        required=True,
        metavar="SINK",
        help="redis://host:6379/0[?prefix=P], a .sqlite/.db file, or a folder for parquet",
    )
    b.add_argument("-k", type=int, default=100, help="results per query (default 100)")
    b.add_argument(
        "--query",
        action="append",
        choices=tuple(_QUERIES),
        help="what to compute (repeatable; default recommend)",
    )
    who = b.add_mutually_exclusive_group()
    who.add_argument("--users", metavar="FILE", help="user ids to compute, one per line")
    who.add_argument("--user", action="append", metavar="ID", help="a user id (repeatable)")
    b.add_argument(
        "--unknown-users",
        choices=("refuse", "skip"),
        default="refuse",
        help="a given user id the artifact lacks: stop (default) or leave it out and report it",
    )
    b.add_argument(
        "--include-seen", action="store_true", help="do not exclude the users' seen items"
    )
    b.add_argument(
        "--filter",
        action="append",
        metavar="EXPR",
        help="keep only results whose catalogue fields pass EXPR (repeatable, ANDed), e.g. "
        "genres=Comedy for a carousel; each filter is written to its own namespace of the sink "
        "(Redis: the prefix gets :filter:NAME; files: NAME beside the given path)",
    )
    b.add_argument(
        "--search",
        choices=("exact", "index"),
        default="exact",
        help="exact brute force (default), or the artifact's own (ANN) index",
    )
    b.add_argument("--nprobe", type=int, help="IVF lists to visit (--search index)")
    b.add_argument("--ef-search", type=int, help="HNSW efSearch (--search index)")
    b.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default="auto",
        help="where exact search runs (default: a CUDA GPU when torch sees one)",
    )
    b.add_argument(
        "--block-size", type=int, default=4096, help="queries per block: the unit of resuming"
    )
    b.add_argument(
        "--restart", action="store_true", help="do not resume an interrupted run of the same plan"
    )
    b.add_argument("--prefix", help="Redis key prefix (default recs, or ?prefix= in the URL)")
    b.add_argument(
        "--old-ttl",
        type=int,
        default=3600,
        help="Redis: seconds the previous version lives after the flip (0: delete now)",
    )
    b.add_argument("--no-verify", action="store_true", help="skip checksum verification on load")
    b.add_argument(
        "--without-changes",
        action="store_true",
        help="a version root: export its current version's artifact alone, without the live "
        "changes pending on it (by default they are applied first)",
    )
    b.add_argument("--json", action="store_true", help="print the report as one JSON object")
    b.add_argument("-q", "--quiet", action="store_true", help="no plan, no progress bar")
    b.set_defaults(run=run_batch_command)

    c = subparsers.add_parser(
        "cached",
        help="read one user's stored results from a batch sink",
        description="Print the results a batch run stored for an id, with the catalog's fields, "
        "in the same shape as `embrecall recommend` (with --json: the same JSON object).",
    )
    c.add_argument("id", metavar="USER_ID")
    c.add_argument("--from", dest="source", required=True, metavar="SINK", help="the batch sink")
    c.add_argument(
        "--query",
        choices=tuple(_QUERIES),
        default="recommend",
        help="which stored results (default recommend; similar-items takes an item id)",
    )
    c.add_argument("-k", type=int, help="at most this many results (default: all stored)")
    c.add_argument(
        "--filter",
        action="append",
        metavar="EXPR",
        help="read the results a batch run stored for this filter (the same expressions)",
    )
    c.add_argument(
        "--catalog", help="item metadata (default: the catalog of the artifact the run read)"
    )
    c.add_argument("--json", action="store_true", help="print one JSON object with a results list")
    c.set_defaults(run=run_cached_command)


# -- batch -----------------------------------------------------------------------------------
def run_batch_command(args: argparse.Namespace) -> int:
    from embrecall.batch import plan_batch, run_batch
    from embrecall.batch.sinks import open_sink
    from embrecall.live.apply import load_for_export

    user_ids = _read_ids(Path(args.users)) if args.users else args.user
    sink_options: dict[str, Any] = {}
    if _is_redis(args.out):
        sink_options = {"prefix": args.prefix, "old_ttl": args.old_ttl}
    elif args.prefix:
        raise InvalidArgumentError("--prefix applies to Redis sinks only")
    out = args.out
    if args.filter:
        out, sink_options = filtered_sink(out, sink_options, args.filter)
    sink = open_sink(out, **sink_options)
    sink.check()  # an unreachable sink fails now, not after loading and computing
    rec, pending = load_for_export(
        args.artifact,
        verify=not args.no_verify,
        exact=args.search == "exact",
        changes=not args.without_changes,
        progress=False if args.quiet else None,
    )
    if pending and not args.quiet:
        print(f"with {pending:,} pending live changes applied", file=sys.stderr)
    params = {k: v for k, v in (("nprobe", args.nprobe), ("efSearch", args.ef_search)) if v}
    plan = plan_batch(
        rec,
        args.k,
        queries=[_QUERIES[q] for q in (args.query or ["recommend"])],
        user_ids=user_ids,
        on_unknown=args.unknown_users,
        exclude_seen=not args.include_seen,
        search=args.search,
        device=args.device,
        params=params,
        block_size=args.block_size,
        filter=args.filter,
    )
    if plan.unknown_ids:
        shown = ", ".join(str(i) for i in plan.unknown_ids[:10])
        more = " ..." if len(plan.unknown_ids) > 10 else ""
        print(f"left out {len(plan.unknown_ids)} unknown user ids: {shown}{more}", file=sys.stderr)
    if not args.quiet:
        print(describe_plan(plan, sink), file=sys.stderr)
    report = run_batch(plan, sink, restart=args.restart, progress=False if args.quiet else None)
    if args.json:
        print(json.dumps({**report.to_dict(), "live_changes": pending}, ensure_ascii=False))
    elif not args.quiet:
        resumed = f", {report.blocks_resumed} blocks resumed" if report.blocks_resumed else ""
        print(
            f"wrote version {report.version} to {report.sink}: "
            f"{sum(report.queries.values()):,} lists in {report.seconds:.1f}s "
            f"({report.queries_per_second:,.0f}/s{resumed}); it is now current"
        )
    return 0


def _is_redis(address) -> bool:
    return str(address).startswith(("redis://", "rediss://", "unix://"))


def filtered_sink(address: str, options: dict[str, Any], expressions) -> tuple[str, dict]:
    """Where a filter's results live: their own namespace beside the unfiltered ones, so each
    filter has its own versions and its own current one.

    Redis: the key prefix gets ``:filter:NAME``; a SQLite file ``recs.db`` becomes
    ``recs.filter-NAME.db``; a parquet folder ``out`` becomes ``out.filter-NAME``, where NAME
    is :func:`~embrecall.batch.plan.filter_namespace`.
    """
    from embrecall.batch.plan import filter_namespace
    from embrecall.batch.sinks.redis_sink import DEFAULT_PREFIX

    name = filter_namespace(expressions)
    if _is_redis(address):
        from urllib.parse import parse_qsl, urlsplit

        prefix = options.get("prefix") or dict(parse_qsl(urlsplit(address).query)).get(
            "prefix", DEFAULT_PREFIX
        )
        return address, {**options, "prefix": f"{prefix}:filter:{name}"}
    path = Path(str(address).split("://", 1)[-1])
    scheme = str(address)[: -len(str(path))] if "://" in str(address) else ""
    if path.suffix.lower() in (".db", ".sqlite", ".sqlite3"):
        return f"{scheme}{path.with_name(f'{path.stem}.filter-{name}{path.suffix}')}", options
    return f"{scheme}{path.with_name(f'{path.name}.filter-{name}')}", options


def describe_plan(plan, sink) -> str:
    """Two lines: what will be computed, and how much the sink will hold."""
    parts = [f"{t.query} for {len(t.rows):,} {query_space(t.query)}" for t in plan.tasks]
    total = sum(
        sink.estimate_bytes(len(t.rows), plan.value_bytes(t), _key_bytes(plan, t))
        for t in plan.tasks
    )
    return (
        f"computing {', '.join(parts)}: k={plan.k}, {plan.search} search on {plan.device}, "
        f"{plan.n_blocks} block{'s' if plan.n_blocks > 1 else ''} of up to {plan.block_size}\n"
        f"about {_size(total)} {sink.storage} for {plan.n_queries:,} result lists"
    )


def _key_bytes(plan, task) -> int:
    ids = plan.query_space(task).ids
    sample = ids[:: max(1, len(ids) // 1000)]
    return int(sum(len(str(i)) for i in sample) / max(1, len(sample)))


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n:,.1f} TiB"


def _read_ids(path: Path) -> list[str]:
    """Ids from a text file: one per line; blank lines and lines starting with # are skipped."""
    ids = [
        line.strip()
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if not ids:
        raise InvalidArgumentError(f"{path}: no user ids in it")
    return ids


# -- cached ----------------------------------------------------------------------------------
def run_cached_command(args: argparse.Namespace) -> int:
    from embrecall.batch.reader import CachedRecall
    from embrecall.embeddings import coerce_id

    query = _QUERIES[args.query]
    source = args.source
    if args.filter:
        source, options = filtered_sink(source, {}, args.filter)
        if options:
            from embrecall.batch.sinks import open_sink

            source = open_sink(source, **options)
    recall = CachedRecall(source, catalog=args.catalog)
    try:
        ids, scores = recall.lookup(query, [args.id], args.k)[0]
        described = recall.describe(query)
        results = recall.results(ids, scores, space=target_space(query))
        parsed = coerce_id(args.id, described["id_kind"])
    finally:
        recall.close()
    from embrecall.display import query_output

    print(
        query_output(
            results,
            as_json=args.json,
            query=query,
            id=parsed,
            k=args.k if args.k else described["k"],
            metric=described["metric"],
            score=described["score"],
        )
    )
    return 0
