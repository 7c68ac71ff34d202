"""The one batch size: how many values an IN list, a multi-row write or a streamed read carries at once.

Large enough that a batch costs one round trip rather than hundreds, small enough that a batch of rows
stays a few MB and an IN list stays far below every backend's parameter limit (SQLite 32,766;
PostgreSQL 65,535).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar

BATCH_SIZE = 1000

T = TypeVar("T")


def batches(values: Sequence[T], size: int = BATCH_SIZE) -> Iterator[Sequence[T]]:
    """`values` in consecutive slices of at most `size`."""
    for start in range(0, len(values), size):
        yield values[start : start + size]
