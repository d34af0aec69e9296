"""The BeliefConsistencyChecker over HTTP.

POST {url} with `{"query": str, "beliefs": [{"id", "statement", "active"}], "memories": [str]}`;
the answer is `{"severity": float in [0, 1], "belief_ids": [str]}`. Anything else, an
error status or no answer within the timeout raises CheckerUnavailable: adoption is
then refused with that reason, never silently allowed.
"""

from __future__ import annotations

import math
import urllib.error
import urllib.request
from collections.abc import Sequence

import orjson

from service.domain.beliefs import Belief
from service.domain.vetting import CheckerUnavailable, Consistency


class HttpChecker:
    def __init__(self, url: str, timeout_s: float) -> None:
        self.url, self.timeout_s = url, timeout_s

    def check_consistency(
        self, query: str, beliefs: Sequence[Belief], memories: Sequence[str]
    ) -> Consistency:
        body = orjson.dumps(
            {
                "query": query,
                "beliefs": [{"id": b.id, "statement": b.statement, "active": b.active}
                            for b in beliefs],
                "memories": list(memories),
            }
        )  # fmt: skip
        request = urllib.request.Request(
            self.url, data=body, method="POST", headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                answer = orjson.loads(response.read())
        except (urllib.error.URLError, TimeoutError, OSError, orjson.JSONDecodeError) as exc:
            raise CheckerUnavailable(f"{self.url}: {exc}") from exc
        return _consistency(answer, self.url)


def _consistency(answer: object, url: str) -> Consistency:
    if not isinstance(answer, dict):
        raise CheckerUnavailable(f"{url}: the answer is not a JSON object")
    severity, ids = answer.get("severity"), answer.get("belief_ids", [])
    if (
        not isinstance(severity, int | float)
        or isinstance(severity, bool)
        or not math.isfinite(severity)
        or not 0.0 <= severity <= 1.0
    ):
        raise CheckerUnavailable(f"{url}: severity must be a number in [0, 1], got {severity!r}")
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise CheckerUnavailable(f"{url}: belief_ids must be a list of strings")
    return Consistency(float(severity), tuple(ids))
