"""CLI commands of live updates: ``update`` and ``compact``. Importing this module is light."""

from __future__ import annotations

import argparse
import json
from typing import Any

from embrecall.errors import InvalidArgumentError


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register ``update`` and ``compact`` on ``subparsers``."""
    u = subparsers.add_parser(
        "update",
        help="apply live changes (upserts, deletes, seen items) to the current version of a "
        "root or a Milvus target",
        description="Validate every change against TARGET's current version, then append them "
        "to its durable change log (on a Milvus target: Milvus's own upsert and delete, and "
        "a change record); servers apply them within a second. Files are "
        "read with the same readers and checks as build; bad input writes nothing.",
    )
    u.add_argument("target", metavar="TARGET", help="a version root or a Milvus target")
    u.add_argument("--items", help="item embeddings to add or replace (formats as build)")
    u.add_argument("--users", help="user embeddings to add or replace")
    u.add_argument("--catalog", help="catalogue fields of the upserted items (formats as build)")
    u.add_argument("--delete-items", metavar="IDS|FILE", help="comma-separated ids, or a file")
    u.add_argument("--delete-users", metavar="IDS|FILE", help="comma-separated ids, or a file")
    u.add_argument(
        "--seen",
        metavar="FILE",
        help="(user, item) pairs just consumed (as build's --interactions)",
    )
    u.add_argument(
        "--format", default="auto", choices=("auto", "spark_csv", "parquet", "npy", "word2vec")
    )
    u.add_argument("--id-column", help="id column of the embedding files (default id)")
    u.add_argument("--vector-column", help="vector column of the embedding files")
    u.add_argument("--id-type", choices=("auto", "int", "str"), default="auto")
    u.add_argument("--catalog-id-column", help="id column of the catalog")
    u.add_argument("--on-bad-row", choices=("raise", "skip"), default="raise")
    u.add_argument("--json", action="store_true", help="print one JSON object")
    u.add_argument("-q", "--quiet", action="store_true", help="no progress bar, no summary")
    u.set_defaults(run=_cmd_update)

    c = subparsers.add_parser(
        "compact",
        help="fold live changes into a new version (verified, canary-checked publish)",
    )
    c.add_argument("target", metavar="TARGET", help="a version root or a Milvus target")
    c.add_argument("--id", dest="version", help="the new version id (default: UTC time)")
    c.add_argument("--no-check", action="store_true", help="skip the canary queries")
    c.add_argument("--json", action="store_true", help="print one JSON object")
    c.add_argument("-q", "--quiet", action="store_true", help="no progress bar, no summary")
    c.set_defaults(run=_cmd_compact)


def _cmd_update(args: argparse.Namespace) -> int:
    from embrecall.live.apply import read_ids, update

    if not any((args.items, args.users, args.delete_items, args.delete_users, args.seen)):
        raise InvalidArgumentError(
            "nothing to update: pass --items, --users, --delete-items, --delete-users or --seen"
        )
    if args.catalog and not args.items:
        raise InvalidArgumentError("--catalog gives fields of upserted items: pass --items too")
    from embrecall.cli import embedding_read_options

    read = embedding_read_options(args)
    inputs: dict[str, Any] = {}
    if args.items or args.users:
        from embrecall.io import read_embeddings

        if args.items:
            inputs["items"] = read_embeddings(args.items, **read)
        if args.users:
            inputs["users"] = read_embeddings(args.users, **read)
    if args.catalog:
        from embrecall.catalog import read_catalog

        options = {"id_column": args.catalog_id_column} if args.catalog_id_column else {}
        inputs["catalog"] = read_catalog(args.catalog, **options)
    if args.seen:
        from embrecall.interactions import read_interactions

        inputs["seen"] = read_interactions(args.seen)
    if args.delete_items:
        inputs["delete_items"] = read_ids(args.delete_items)
    if args.delete_users:
        inputs["delete_users"] = read_ids(args.delete_users)
    summary = update(args.target, progress=False if args.quiet else None, **inputs)
    _print(args, summary, f"applied {summary['records']} changes to version {summary['version']}")
    return 0


def _cmd_compact(args: argparse.Namespace) -> int:
    from embrecall.live.apply import compact
    from embrecall.milvus import is_milvus_target
    from embrecall.service.commands import CANARY_DEFAULTS, _canary_check

    floor = None if args.no_check else dict(CANARY_DEFAULTS)
    check = _canary_check(args, lambda path: floor) if floor else None
    if is_milvus_target(args.target):  # the canary runs on the version read back from Milvus
        from embrecall.milvus.commands import _canary

        check = _canary(args, lambda version: floor) if floor else None
    summary = compact(
        args.target,
        version=args.version,
        check=check,
        canary_floor=floor,
        progress=False if args.quiet else None,
    )
    _print(
        args,
        summary,
        f"compacted {summary['folded_records']} changes of {summary['previous']} into "
        f"{summary['version']} ({summary['items']} items, {summary['users']} users)",
    )
    return 0


def _print(args: argparse.Namespace, data: dict[str, Any], text: str) -> None:
    if args.json:
        print(json.dumps(data))
    elif not args.quiet:
        print(text)
