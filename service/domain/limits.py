"""Size limits on everything a client can send. One place, documented in docs/api.md (Limits)."""

MAX_ID_LENGTH = 128
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@-]*$"  # no "/": ids are URL path segments
RESERVED_GOAL_IDS = frozenset({"prioritized", "select"})  # words the goal routes use
MAX_TEXT_LENGTH = 4_000
MAX_LIST_ITEMS = 64
MAX_CRITERIA = 32  # acceptance criteria on one goal
MAX_LINKS = 64  # external work linked to one goal
MAX_REF_LENGTH = 512  # a link's ref
MAX_URL_LENGTH = 2_000  # a link's url
MAX_MAP_KEYS = 64
MAX_KEY_LENGTH = 128
MAX_JSON_DEPTH = 8
MAX_JSON_STRING = 4_000
MAX_JSON_NODES = 2_000
MAX_HORIZON_MIN = 10 * 365 * 24 * 60  # ten years, in minutes
