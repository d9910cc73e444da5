"""Pieces of PostgreSQL's one-statement writes (data-modifying CTEs) on the purchase path: many
rows passed as one array parameter per column, and how many rows each step wrote."""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, func, literal_column, select
from sqlalchemy.dialects.postgresql import ARRAY


def rows_of_arrays(**columns: tuple[str, Any]) -> Any:
    """A FROM of rows given as parallel arrays, ``column=(parameter, element type)``, unnested
    side by side (``unnest(a, b) AS x(col_a, col_b)``)."""
    arrays = (bindparam(parameter, type_=ARRAY(type_)) for parameter, type_ in columns.values())
    return func.unnest(*arrays).table_valued(*columns).render_derived()


def counted(step: Any, name: str) -> Any:
    """A write as a CTE that returns one row per row it wrote."""
    return step.returning(literal_column("1")).cte(name)


def row_count(cte: Any) -> Any:
    """How many rows a CTE returned, as a column of the statement."""
    return select(func.count()).select_from(cte).scalar_subquery()
