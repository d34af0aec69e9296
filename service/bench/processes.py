"""The processes a run starts (`goalstore serve|worker`, the selectors) and the waiting
for them: a free port, a process stopped however the block ends, a probe polled until it
holds."""

from __future__ import annotations

import http.client
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

# The `goalstore` program, whose serve and worker commands live beside the workers. Run
# as a process, never imported: nothing under service/ imports workers/.
GOALSTORE = [sys.executable, "-m", "workers.cli"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def goalstore_process(
    args: list[str], env: dict[str, str], log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """`goalstore ARGS`, its output in `log`, terminated when the block ends."""
    with log.open("wb") as out:
        proc = subprocess.Popen([*GOALSTORE, *args], env=env, stdout=out, stderr=out)
        try:
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def wait_for(what: str, probe: Callable[[], bool], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if probe():
                return
        except OSError:  # not listening yet
            pass
        time.sleep(0.02)
    raise RuntimeError(f"bench: timed out waiting for {what}")


def http_status(port: int, path: str) -> int:
    """The status of GET `path` on 127.0.0.1:`port`, over a fresh connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    finally:
        conn.close()
