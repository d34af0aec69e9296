"""The few places where SQLite's SQL and PostgreSQL's differ, as one object per engine.

Every store query is written once, with `?` placeholders and JSON kept as text; a
query that must name an engine-specific construct asks its connection's dialect for
it. Nothing else in the store knows which engine it talks to.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Dialect:
    name: str  # also the folder of its migrations: migrations/<name>/
    _each: str  # a set-returning call over a JSON array's elements, as text: {expr}, {alias}
    _field: str  # one top-level JSON field as text: {expr}, {key}
    integer: str  # the type a JSON element is cast to when compared with an integer key
    table_exists: str  # one row if the table named by the parameter exists
    tables: str  # the names of the store's tables
    columns: str  # the column names of the table named by the parameter, in order
    _list: str = "{select}"  # the subquery of an IN list, around `{select}`

    def each(self, expr: str, alias: str) -> str:
        """A FROM item whose rows are the elements of the JSON array `expr`, as
        `alias.value`."""
        return self._each.format(expr=expr, alias=alias)

    def values_of(self, expr: str = "?", *, integers: bool = False) -> str:
        """A subquery of the elements of the JSON array `expr` (a parameter by default),
        for `column IN (...)`."""
        value = f"CAST(j.value AS {self.integer})" if integers else "j.value"
        return self._list.format(select=f"SELECT {value} FROM {self.each(expr, 'j')}")

    def field(self, expr: str, key: str) -> str:
        """The top-level field `key` of the JSON object `expr`, as text (NULL if absent)."""
        return self._field.format(expr=expr, key=key)


SQLITE = Dialect(
    name="sqlite",
    _each="json_each({expr}) AS {alias}",
    _field="json_extract({expr}, '$.{key}')",
    integer="INTEGER",
    table_exists="SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
    tables="SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
    columns="SELECT name FROM pragma_table_info(?) ORDER BY cid",
)

POSTGRESQL = Dialect(
    name="postgresql",
    _each="json_array_elements_text(CAST({expr} AS json)) AS {alias}(value)",
    _field="(CAST({expr} AS json) ->> '{key}')",
    integer="BIGINT",
    table_exists="SELECT 1 WHERE to_regclass(CAST(? AS text)) IS NOT NULL",
    tables="SELECT table_name FROM information_schema.tables"
    " WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'",
    columns="SELECT column_name FROM information_schema.columns"
    " WHERE table_schema = current_schema() AND table_name = ? ORDER BY ordinal_position",
    # PostgreSQL takes a set-returning function for 100 rows. For an IN list of that many,
    # a table of ~10k rows is cheaper to read whole (a hash join) than to look up, so the
    # 20 goals of a ranked page cost a scan of every goal. An ARRAY unnested is taken for
    # 10 rows, which it looks up in the index: 2.8 ms -> 0.12 ms at 10k goals (EXPLAIN
    # ANALYZE, 2026-12-05). At 100k goals it looked them up either way.
    _list="SELECT unnest(ARRAY({select}))",
)
