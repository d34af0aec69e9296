"""The prioritizer: a pure function of goals, active beliefs, weights and `now`.

    final = wv*value + we*(1-effort) + wr*(1-risk) + wu*urgency + wa*alignment + penalty

`urgency` follows the seed's horizon scoring (0 more than 24 h before the deadline,
rising linearly to 1 at it, -1 once it has passed, 0 without one); `alignment` is
the share of `aligns_with` beliefs that are active. A goal is **blocked** (penalty
-1, never selected) when someone blocked it by hand (a manual block), when it
contradicts an active belief, when a goal it depends on is not satisfied, or when its
deadline has passed; in a goal tree, also while it has open children, while an abandoned
child holds it, or while an ancestor is blocked, and its deadline is the earliest of its
own and its ancestors' (trees.py). The reported score is clamped to [0, 1].

Order (total, so ranking is deterministic): unblocked before blocked; then higher
score; then higher unclamped sum; then earlier deadline (none last); then earlier
creation; then goal id.

Where each part lives:

- inputs.py           what a score depends on: a goal's Features, Weights, RankingInputs
- formula.py          the formula above, once, for one goal (floats) or many (columns)
- explanation.py      one goal scored, every term and every reason it is blocked: Score
- columns.py          many goals scored as NumPy columns: FeatureTable, Scores
- order.py            the total order, and many goals ranked in it: Ranking
- trees.py            what a goal's tree makes of it: TreeFacts
- cache_snapshots.py  what the Redis cache holds of each goal: Snapshots
"""

from service.domain.blocks import Block
from service.domain.ranking.cache_snapshots import (
    Facts,
    FactTable,
    Snapshot,
    Snapshots,
    facts,
    held_urgency,
    snapshot,
    snapshots,
)
from service.domain.ranking.columns import FeatureTable, Scores, score_table
from service.domain.ranking.explanation import Score, blocks, deadline_passed, explain
from service.domain.ranking.formula import (
    BLOCK_PENALTY,
    NO_DEADLINE,
    TERM_NAMES,
    URGENCY_WINDOW_S,
    Bools,
    Floats,
    alignment_of,
    clamp,
)
from service.domain.ranking.inputs import (
    Features,
    RankingInputs,
    TreeFacts,
    Weights,
    features,
    held_by,
    manual_reason,
)
from service.domain.ranking.order import Ranked, Ranking, order_key, order_keys, rank
from service.domain.ranking.trees import Lineage, tree_facts

__all__ = [
    "BLOCK_PENALTY",
    "NO_DEADLINE",
    "TERM_NAMES",
    "URGENCY_WINDOW_S",
    "Block",
    "Bools",
    "FactTable",
    "Facts",
    "FeatureTable",
    "Features",
    "Floats",
    "Lineage",
    "Ranked",
    "Ranking",
    "RankingInputs",
    "Score",
    "Scores",
    "Snapshot",
    "Snapshots",
    "TreeFacts",
    "Weights",
    "alignment_of",
    "blocks",
    "clamp",
    "deadline_passed",
    "explain",
    "facts",
    "features",
    "held_by",
    "held_urgency",
    "manual_reason",
    "order_key",
    "order_keys",
    "rank",
    "score_table",
    "snapshot",
    "snapshots",
    "tree_facts",
]
