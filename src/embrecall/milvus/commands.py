"""``publish``, ``rollback`` and ``versions`` on a Milvus target: the CLI's branch for
``milvus://`` and ``milvus-lite:`` targets (``embrecall.service.commands`` sends them here)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from embrecall.milvus.versions import MilvusVersions, prefix_from_env
from embrecall.service.commands import canary_settings, print_result, roll_back


def _source(args: argparse.Namespace) -> MilvusVersions:
    return MilvusVersions(args.root, getattr(args, "collection_prefix", None) or prefix_from_env())


def _canary(args: argparse.Namespace, floor_of):
    def check(rec, version: str) -> None:
        from embrecall.service.canary import check_canary

        settings = floor_of(version)
        report = check_canary(
            rec, queries=settings["queries"], min_recall=settings["min_recall"], k=settings["k"]
        )
        if not args.json:
            print(report.summary(), file=sys.stderr)

    return check


def publish(args: argparse.Namespace, defaults: dict[str, Any]) -> int:
    source = _source(args)
    floor = None
    if not args.no_check:
        floor = {**defaults, "min_recall": args.canary_min_recall, "queries": args.canary_queries}
    version = source.publish(
        args.artifact,
        args.version,
        activate=not args.no_activate,
        check=_canary(args, lambda v: floor) if floor else None,
        canary_floor=floor,
        keep=args.keep,
        index=args.milvus_index,
        shards=args.shards,
        replicas=args.replicas,
    )
    current = source.current()
    print_result(
        args,
        {"version": version, "root": args.root, "current": current, "prefix": source.prefix},
        f"published {version} to {args.root} (prefix {source.prefix})"
        + ("" if current == version else f" (current stays {current})"),
    )
    return 0


def rollback(args: argparse.Namespace, defaults: dict[str, Any]) -> int:
    source = _source(args)

    def floor(version: str) -> dict[str, Any]:
        return canary_settings(args, defaults, source.canary_floor(version))

    check = None if args.no_check else _canary(args, floor)
    return roll_back(args, source, check, args.root)


def versions(args: argparse.Namespace) -> int:
    from embrecall.display import table

    source = _source(args)
    listed = source.versions()
    target = source.rollback_target()
    leftovers = source.leftovers()
    if args.json:
        print(
            json.dumps(
                {
                    "root": args.root,
                    "prefix": source.prefix,
                    "current": source.current(),
                    "versions": listed,
                    "previous": source.history()["previous"],
                    "rollback_to": target,
                    "leftovers": leftovers,
                },
                indent=2,
            )
        )
        return 0
    rows = [
        [
            "*" if v["current"] else "",
            v["id"],
            v["created_at"] or "?",
            v["published_at"],
            str(v["items"]),
            ", ".join(sorted(set(v["indexes"].values()))),
        ]
        for v in listed
    ]
    print(table(["", "version", "built", "published", "items", "Milvus index"], rows))
    if target is not None:
        print(f"rollback goes to: {target}")
    if leftovers:
        print(f"left by killed publishes (the next publish drops them): {', '.join(leftovers)}")
    return 0
