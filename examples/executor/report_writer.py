"""A GoalStore executor that does real work: it writes a Markdown report for the goal.

Run it with `GOALSTORE_EXECUTOR=report_writer.run` and this folder on the worker's
PYTHONPATH (README.md beside it). It imports nothing from GoalStore: the payload is
plain JSON (GET /v1/schemas/task-payload), the returned mapping becomes the task's
evidence, and an exception fails the task with `Type: message`.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def report_dir(payload: Mapping[str, Any]) -> Path:
    """The goal's `metadata.report_dir`, else $REPORT_DIR, else ./reports, created if
    missing. ValueError for anything but a plain directory path this process can create."""
    raw = payload["metadata"].get("report_dir") or os.environ.get("REPORT_DIR") or "reports"
    if not isinstance(raw, str) or "://" in raw or raw.startswith("~") or not raw.isprintable():
        raise ValueError(f"report_dir must be a plain directory path, not {raw!r}")
    path = Path(raw)
    if ".." in path.parts:
        raise ValueError(f"report_dir must not climb out with '..': {raw!r}")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a file in the way, no permission, read-only file system...
        raise ValueError(f"cannot create report_dir {raw!r}: {exc.strerror}") from exc
    return path


def render(payload: Mapping[str, Any], written_at: datetime) -> str:
    """The report: the goal's text as its title, who and when, its success metrics."""
    metrics = payload["success_metrics"] or {"(none given)": ""}
    return "\n".join([
        f"# {' '.join(str(payload['text']).split())}",
        "",
        f"- goal: `{payload['goal_id']}` (version {payload['goal_version']})",
        f"- attempt: {payload['attempt']} (task `{payload['task_id']}`)",
        f"- trace: `{payload['trace_id']}`",
        f"- written: {written_at.isoformat(timespec='seconds')}",
        "",
        "## Success metrics",
        "",
        "| metric | target |",
        "| --- | --- |",
        *(f"| {name} | {target} |" for name, target in metrics.items()),
        "",
    ])  # fmt: skip


def run(payload: Mapping[str, Any]) -> dict[str, Any]:
    """Write the task's report (once: a job run again keeps the first one) and return
    the evidence: a summary, the file's path, its SHA-256 and its size."""
    # Keyed by task id: a job that runs twice after a crash finds its report there.
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", payload["task_id"]) + ".md"
    path = (report_dir(payload) / name).absolute()
    if not path.exists():
        partial = path.with_suffix(".md.partial")
        partial.write_text(render(payload, datetime.now(UTC)), encoding="utf-8")
        partial.replace(path)  # atomic: a reader never sees half a report
    content = path.read_bytes()
    return {
        "summary": f"report for goal {payload['goal_id']} written to {path}",
        "path": str(path),
        "sha256": hashlib.sha256(content).hexdigest(),
        "bytes": len(content),
    }
