"""Split a stream of items into batches that fit a service's per-call limits.

Kinesis PutRecords (500 records, 5 MiB), OpenSearch _bulk (items and body bytes) and DynamoDB
TransactWriteItems (items and request bytes) all cap a call by count *and* size. One function does
the splitting for all of them, so the rule lives in one place and is tested once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def bounded_batches(items: Iterable[T], *, max_items: int, max_bytes: int, size: Callable[[T], int]) -> Iterator[list[T]]:
    """Consecutive, non-empty batches of `items`, in order, each with at most `max_items` items whose
    `size`s add up to at most `max_bytes`.

    An item whose own size is over `max_bytes` is not an error here: it goes out alone, in a batch of
    one, and the service decides. Callers with a hard per-item limit (Kinesis' 1 MiB record) check it
    before batching, where they can report the item. Lazy: a batch is yielded once the next item does
    not fit, so a large input is never held in memory whole.
    """
    if isinstance(max_items, bool) or not isinstance(max_items, int) or max_items < 1:
        raise ValueError(f"bounded_batches: max_items must be an integer >= 1, got {max_items!r}")
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
        raise ValueError(f"bounded_batches: max_bytes must be an integer >= 1, got {max_bytes!r}")
    return _batches(items, max_items, max_bytes, size)  # checked above, not at the first next()


def _batches(items: Iterable[T], max_items: int, max_bytes: int, size: Callable[[T], int]) -> Iterator[list[T]]:
    batch: list[T] = []
    total = 0
    for position, item in enumerate(items):
        n = size(item)
        if n < 0:
            raise ValueError(f"bounded_batches: size() of item {position} is {n}; a size must be >= 0")
        if batch and (len(batch) >= max_items or total + n > max_bytes):
            yield batch
            batch, total = [], 0
        batch.append(item)
        total += n
    if batch:
        yield batch
