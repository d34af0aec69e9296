"""`goalstore store copy --from SRC --to DST`: move a deployment's store to another engine.

The copy itself is service/store/copy.py; this prints its progress on stderr (one line
per table and per batch), its report as JSON on stdout, and, when it stops part way,
how far it got and that the same command resumes it. Exit codes: 0 copied and
verified; 1 copied but a check failed (the report's `problems`); 4 refused (the target
is not empty, or the source's ledger is broken); 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from service.cli.output import EXIT_CHECK_FAILED, EXIT_OK, emit, fail
from service.runtime import Services
from service.store.copy import BATCH_ROWS, Step, copy_store
from service.store.db import Database, open_database

EXIT_INTERRUPTED = 130  # what a shell reports for a command stopped by Ctrl-C


def _is_url(location: str) -> bool:
    return location.startswith(("postgresql://", "postgres://"))


def _open_source(location: str) -> Database:
    """The source must exist: opening a SQLite path that does not would create it."""
    if not _is_url(location) and not Path(location).is_file():
        raise FileNotFoundError(f"{location}: no such SQLite file to copy from")
    return open_database(location)


def cmd_copy(args: argparse.Namespace, services: Services) -> int:
    last: list[Step] = []

    def show(step: Step) -> None:
        last[:] = [step]
        print(f"store copy: {step}", file=sys.stderr, flush=True)

    def stopped(why: str) -> str:
        where = f"at {last[0]}" if last else "before the first batch"
        return (
            f"store copy stopped {where} ({why}); every batch before it is committed: "
            "rerun the same command to resume"
        )

    source = _open_source(args.source)
    target = open_database(args.target)
    try:
        report = copy_store(source, target, show, batch_rows=args.batch)
    except KeyboardInterrupt:  # the JSON on stdout, and its log line on stderr, say where
        where = {"table": last[0].table, "copied": last[0].copied} if last else {}
        return fail(EXIT_INTERRUPTED, "interrupted", stopped("interrupted"), **where)
    except Exception as exc:
        if last:  # refusals come before the first step: there is nothing to resume
            print(stopped(f"{type(exc).__name__}: {exc}"), file=sys.stderr, flush=True)
        raise
    finally:
        source.close()
        target.close()
    emit(report.as_dict())
    return EXIT_OK if report.ok else EXIT_CHECK_FAILED


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def add_commands(sub: Any) -> None:
    store = sub.add_parser("store", help="the durable store as a whole").add_subparsers(
        dest="store_command", required=True, metavar="ACTION"
    )
    copy = store.add_parser(
        "copy",
        help="copy every table into an empty store (e.g. SQLite to PostgreSQL); rerun to resume",
    )
    copy.add_argument(
        "--from", dest="source", required=True, metavar="SRC",
        help="the SQLite file or postgresql:// URL to copy (its writers stopped)",
    )  # fmt: skip
    copy.add_argument(
        "--to", dest="target", required=True, metavar="DST",
        help="an empty store, or one holding an unfinished copy of SRC",
    )  # fmt: skip
    copy.add_argument(
        "--batch", type=_positive, default=BATCH_ROWS,
        help=f"rows per transaction (default: {BATCH_ROWS})",
    )  # fmt: skip
    copy.set_defaults(run=cmd_copy)
