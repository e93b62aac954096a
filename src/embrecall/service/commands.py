"""CLI commands of the service and the version root: ``serve``, ``publish``, ``rollback``,
``versions``.

``embrecall.cli`` registers them with :func:`add_commands`. Importing this module is light:
``publish``, ``rollback`` and ``versions`` work without the ``server`` extra, and ``serve``
names the extra when it is missing.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any

from embrecall.errors import ArtifactError, require_extra
from embrecall.service.canary_defaults import DEFAULT_K, DEFAULT_MIN_RECALL, DEFAULT_QUERIES

# the canary publish runs by default; a rollback uses what the target was published with
CANARY_DEFAULTS: dict[str, Any] = {
    "min_recall": DEFAULT_MIN_RECALL,
    "queries": DEFAULT_QUERIES,
    "k": DEFAULT_K,
}


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register ``serve``, ``publish``, ``rollback`` and ``versions`` on ``subparsers``."""
    s = subparsers.add_parser(
        "serve",
        help="serve an artifact or a root of versions over HTTP",
        description="Serve TARGET (one artifact, or a root of versions whose CURRENT pointer is "
        "watched) with FastAPI on uvicorn, in one server process or --workers N. API keys come "
        "from the environment only: EMBRECALL_API_KEY (reads), EMBRECALL_ADMIN_API_KEY (admin); "
        "other settings from EMBRECALL_* variables (see docs/service.md).",
    )
    s.add_argument("target", metavar="TARGET", help="an artifact directory or a version root")
    s.add_argument("--host", default=None, help="address to listen on (default 127.0.0.1)")
    s.add_argument("--port", type=int, default=None, help="port (default 8000; 0 picks a free one)")
    s.add_argument(
        "--workers",
        type=_positive_int,
        default=1,
        help="server processes answering on the port (default 1). More than 1 implies --mmap: "
        "the workers share one copy of each version; each watches CURRENT and swaps on its own",
    )
    s.add_argument(
        "--search-threads",
        type=int,
        default=None,
        help="searches at once per process (default: 0, on the event loop, with 1-2 usable "
        "cores per process, else those cores)",
    )
    s.add_argument(
        "--watch-interval",
        type=float,
        default=None,
        help="seconds between looks at CURRENT (default 1; 0 turns watching off)",
    )
    s.add_argument(
        "--max-k", type=int, default=None, help="largest k a request may ask (default 1000)"
    )
    s.add_argument("--log-level", default=None, choices=("debug", "info", "warning", "error"))
    s.add_argument("--access-log", action="store_true", default=None, help="log every request")
    s.add_argument(
        "--mmap",
        action="store_true",
        default=None,
        help="map vectors and index codes from the artifact files (processes share one copy)",
    )
    s.add_argument(
        "--no-web-page",
        dest="web_page",
        action="store_false",
        default=None,
        help="do not serve the exploration page at /",
    )
    s.set_defaults(run=_cmd_serve)

    p = subparsers.add_parser(
        "publish",
        help="add an artifact to a root of versions and make it current",
        description="Copy ARTIFACT into ROOT/versions/<id> atomically (verified checksums, "
        "canary queries against the exact answer), then point ROOT/CURRENT at it. A server "
        "watching ROOT swaps to it without downtime.",
    )
    p.add_argument("artifact", metavar="ARTIFACT")
    p.add_argument(
        "root",
        metavar="ROOT",
        help="the version root (created when absent), or a Milvus target: "
        "milvus://HOST:PORT[/DB] or milvus-lite:PATH.db",
    )
    p.add_argument(
        "--id", dest="version", help="version id, [A-Za-z0-9_.-]{1,64} (default: UTC time)"
    )
    p.add_argument("--no-activate", action="store_true", help="stage only; leave CURRENT as it is")
    p.add_argument("--move", action="store_true", help="move the artifact instead of copying it")
    p.add_argument("--no-check", action="store_true", help="skip the canary queries")
    p.add_argument(
        "--canary-queries",
        type=int,
        default=DEFAULT_QUERIES,
        help=f"query ids per query kind (default {DEFAULT_QUERIES})",
    )
    p.add_argument(
        "--canary-min-recall",
        type=float,
        default=DEFAULT_MIN_RECALL,
        help=f"recall@{DEFAULT_K} floor, ties tolerated (default {DEFAULT_MIN_RECALL}); "
        "the root records it, and servers check this version against the same floor",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    _milvus_flags(p)
    p.add_argument(
        "--keep",
        type=_positive_int,
        default=None,
        help="Milvus targets: drop all but the newest N published versions (the current stays)",
    )
    p.add_argument(
        "--milvus-index",
        default="auto",
        choices=("auto", "FLAT", "HNSW", "IVF_FLAT"),
        help="Milvus targets: index kind per space (default auto: FLAT where the artifact is "
        "exact, else HNSW tuned to the artifact's recall target)",
    )
    p.add_argument(
        "--shards",
        type=_positive_int,
        default=None,
        help="Milvus targets: shards per collection (default: the server's)",
    )
    p.add_argument(
        "--replicas",
        type=_positive_int,
        default=None,
        help="Milvus targets: in-memory replicas each collection is loaded with "
        "(default: the server's)",
    )
    p.set_defaults(run=_cmd_publish)

    r = subparsers.add_parser(
        "rollback",
        help="point a root of versions back at the previous version",
        description="Point ROOT/CURRENT at the version that was current before (repeat to go "
        "further back), or at --to VERSION. The target's checksums and canary are checked "
        "first (with the floor it was published with, unless the flags below say otherwise); "
        "a target that fails is refused and nothing changes.",
    )
    r.add_argument("root", metavar="ROOT")
    r.add_argument("--to", dest="version", help="activate this version id instead")
    r.add_argument("--no-check", action="store_true", help="skip the canary queries")
    r.add_argument(
        "--canary-queries",
        type=int,
        default=None,
        help=f"query ids per query kind (default: as published, else {CANARY_DEFAULTS['queries']})",
    )
    r.add_argument(
        "--canary-min-recall",
        type=float,
        default=None,
        help=f"recall floor (default: as published, else {CANARY_DEFAULTS['min_recall']})",
    )
    r.add_argument("--json", action="store_true", help="print one JSON object")
    _milvus_flags(r)
    r.set_defaults(run=_cmd_rollback)

    v = subparsers.add_parser("versions", help="list the versions of a root")
    v.add_argument("root", metavar="ROOT")
    v.add_argument("--json", action="store_true", help="print one JSON object")
    _milvus_flags(v)
    v.set_defaults(run=_cmd_versions)


# -- commands --------------------------------------------------------------------------------
def _cmd_serve(args: argparse.Namespace) -> int:
    uvicorn = require_extra("uvicorn", "server")
    from embrecall.service.app import create_app
    from embrecall.service.protocols import http_protocol
    from embrecall.service.settings import Settings

    settings = Settings.from_env(
        target=args.target,
        host=args.host,
        port=args.port,
        search_threads=args.search_threads,
        watch_interval_s=args.watch_interval,
        max_k=args.max_k,
        log_level=args.log_level,
        access_log=args.access_log,
        web_page=args.web_page,
        mmap=args.mmap,
    )
    configure_logging(settings.log_level)
    if args.workers > 1:
        from embrecall.service.workers import serve_workers

        return serve_workers(settings, args.workers)
    app = create_app(settings)
    service = app.state.service
    single = service.registry.source.mode == "artifact"

    class Server(uvicorn.Server):
        async def startup(self, sockets=None) -> None:
            await super().startup(sockets=sockets)
            if single and service.startup_error:
                self.should_exit = True  # one artifact that cannot load: nothing to wait for

    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=settings.access_log,
        lifespan="on",
        workers=1,
        timeout_graceful_shutdown=10,
        server_header=False,
        http=http_protocol(),  # unparsable requests answered in JSON, like every refusal
    )
    server = Server(config)
    server.run()
    if single and service.startup_error:
        raise ArtifactError(service.startup_error)
    return 0 if server.started else 1


def _cmd_publish(args: argparse.Namespace) -> int:
    from embrecall.versions import VersionRoot

    if _is_milvus(args.root):
        from embrecall.milvus import commands

        return commands.publish(args, CANARY_DEFAULTS)

    floor = None
    if not args.no_check:
        floor = {
            **CANARY_DEFAULTS,
            "min_recall": args.canary_min_recall,
            "queries": args.canary_queries,
        }
    root = VersionRoot(args.root)
    version = root.publish(
        args.artifact,
        args.version,
        activate=not args.no_activate,
        move=args.move,
        check=_canary_check(args, lambda path: floor) if floor else None,
        canary_floor=floor,
    )
    current = root.current()
    print_result(
        args,
        {"version": version, "root": str(root.path), "current": current},
        f"published {version} to {root.path}"
        + ("" if current == version else f" (current stays {current})"),
    )
    return 0


def _cmd_rollback(args: argparse.Namespace) -> int:
    from embrecall.versions import VersionRoot

    if _is_milvus(args.root):
        from embrecall.milvus import commands

        return commands.rollback(args, CANARY_DEFAULTS)

    root = VersionRoot(args.root)

    def floor(path) -> dict[str, Any]:
        # a version's directory is named by its id
        return canary_settings(args, CANARY_DEFAULTS, root.canary_floor(path.name))

    check = None if args.no_check else _canary_check(args, floor)
    return roll_back(args, root, check, str(root.path))


def canary_settings(
    args: argparse.Namespace, defaults: dict[str, Any], published: dict[str, Any] | None
) -> dict[str, Any]:
    """The canary a version is checked with on rollback: the defaults, then what it was published
    with, then the flags."""
    chosen = {**defaults, **(published or {})}
    if args.canary_min_recall is not None:
        chosen["min_recall"] = args.canary_min_recall
    if args.canary_queries is not None:
        chosen["queries"] = args.canary_queries
    return chosen


def roll_back(args: argparse.Namespace, source, check, where: str) -> int:
    """``rollback`` (or ``rollback --version V``) of a version source, said in one line."""
    before = source.current()
    if args.version:
        source.activate(args.version, check=check)
        now = args.version
    else:
        now = source.rollback(check=check)
    print_result(
        args,
        {"root": where, "current": now, "previous": before},
        f"{where}: current is now {now} (was {before})",
    )
    return 0


def _canary_check(args: argparse.Namespace, floor):
    """The check publish and rollback run on a version: canary queries against the exact
    answer, with the settings ``floor(path)`` gives."""

    def check(path) -> None:
        from embrecall.artifact import load_artifact
        from embrecall.service.canary import check_canary

        settings = floor(path)
        report = check_canary(
            load_artifact(path, verify=False),  # the caller verified the checksums
            queries=settings["queries"],
            min_recall=settings["min_recall"],
            k=settings["k"],
        )
        if not args.json:
            print(report.summary(), file=sys.stderr)

    return check


def _cmd_versions(args: argparse.Namespace) -> int:
    from embrecall.display import table
    from embrecall.versions import VersionRoot

    if _is_milvus(args.root):
        from embrecall.milvus import commands

        return commands.versions(args)
    root = VersionRoot(args.root)
    if not VersionRoot.looks_like_root(root.path):
        raise ArtifactError(f"{root.path}: not a version root (no versions/ or CURRENT)")
    versions = root.versions()
    history = root.history()
    target = root.rollback_target()
    leftovers = root.leftovers()
    if args.json:
        print(
            json.dumps(
                {
                    "root": str(root.path),
                    "current": root.current(),
                    "versions": [v.as_dict() for v in versions],
                    "previous": history["previous"],
                    "rollback_to": target,
                    "leftovers": [p.name for p in leftovers],
                },
                indent=2,
            )
        )
        return 0
    rows = [
        ["*" if v.current else "", v.id, v.created_at or "?", v.published_at, _size(v.bytes)]
        for v in versions
    ]
    print(table(["", "version", "built", "published", "size"], rows, right_aligned={4}))
    if target is not None:
        print(f"rollback goes to: {target}")
    if leftovers:
        names = ", ".join(p.name for p in leftovers)
        print(f"left by killed publishes (the next publish removes them): {names}")
    return 0


# -- helpers ---------------------------------------------------------------------------------
def _milvus_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--collection-prefix",
        default=None,
        help="Milvus targets: the prefix of collection and alias names "
        "(default: EMBRECALL_MILVUS_PREFIX, else embrecall)",
    )


def _is_milvus(target: str) -> bool:
    return target.startswith(("milvus://", "milvus-lite:"))


def configure_logging(level: str) -> None:
    """The embrecall log lines of `serve` (and of each of its workers) go to stderr."""
    logger = logging.getLogger("embrecall")
    if not logger.handlers:  # the CLI, not the library, configures logging
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(level.upper())


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def print_result(args: argparse.Namespace, data: dict[str, Any], text: str) -> None:
    """A command's result: one JSON object with ``--json``, else one line of text."""
    print(json.dumps(data) if args.json else text)


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)
