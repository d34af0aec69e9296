"""The schema tier: schemathesis against the served OpenAPI document, every check on.

A real `goalstore serve` (the embedded mode: a SQLite file of the test's own, the
in-process Redis and workers) with an admin key, so the auth checks have something to
enforce; schemathesis generates requests from /openapi.json (examples, coverage,
fuzzing, and the stateful phase that follows the document's links) for a bounded time
and fails on anything the document does not say: an undocumented status or media type,
a body off its schema, a 5xx, invalid data accepted, a missing `Allow` on a 405, auth
ignored. What is relaxed, and why, is in schemathesis.toml beside this file.

GOALSTORE_SCHEMA_BUDGET_S sets the time budget (default 45 s); GOALSTORE_SCHEMA_SEED
the seed (a failure prints the seed and a curl line to reproduce it).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from service.testing import free_port
from tests.e2e.conftest import process_env, stop, wait_ready

HERE = Path(__file__).resolve().parent
ST = Path(sys.executable).parent / "st"
ADMIN_KEY = "schema-tier-admin-key-0123456789"
BUDGET_S = int(os.environ.get("GOALSTORE_SCHEMA_BUDGET_S", "45"))
SEED = os.environ.get("GOALSTORE_SCHEMA_SEED", "20261204")

pytestmark = pytest.mark.e2e


def test_every_operation_answers_as_its_openapi_document_says(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = process_env(
        GOALSTORE_DATABASE=str(tmp_path / "schema.db"), GOALSTORE_API_KEYS=f"st:admin:{ADMIN_KEY}",
        GOALSTORE_LOG_LEVEL="WARNING",
    )  # fmt: skip
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "goalstore"), "serve", "--port", str(port)],
        env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_ready(url, server)
        run = subprocess.run(
            [str(ST), "--config-file", str(HERE / "schemathesis.toml"), "run",
             f"{url}/openapi.json", "--checks", "all", "--exclude-checks", "use_after_free",
             "--max-time", str(BUDGET_S),
             "--workers", "1", "--seed", SEED, "--no-color",
             "--header", f"Authorization: Bearer {ADMIN_KEY}"],
            cwd=tmp_path, capture_output=True, text=True, timeout=BUDGET_S + 180,
        )  # fmt: skip
    finally:
        log = stop(server)

    report = run.stdout[-20_000:] + run.stderr[-5_000:]
    assert 0 == run.returncode, f"{report}\n--- server log (tail) ---\n{log[-5_000:]}"
    assert "generated" in run.stdout  # it ran cases, not only loaded the schema
