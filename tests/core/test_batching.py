"""bounded_batches: the one splitter behind PutRecords, _bulk and TransactWriteItems calls."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from processors.core.batching import bounded_batches

# Items are (id, size) pairs: the id proves order and identity, the size is what gets bounded.
items_st = st.lists(st.integers(0, 120), max_size=200).map(lambda sizes: list(enumerate(sizes)))


def size(item: tuple[int, int]) -> int:
    return item[1]


@given(items_st, st.integers(1, 20), st.integers(1, 400))
def test_every_item_once_in_order_and_every_batch_within_bounds(items, max_items, max_bytes):
    batches = list(bounded_batches(items, max_items=max_items, max_bytes=max_bytes, size=size))
    assert [it for b in batches for it in b] == items  # nothing lost, duplicated or reordered
    for b in batches:
        assert 1 <= len(b) <= max_items
        # the byte bound holds for every batch, except an item too big on its own, which goes alone
        assert sum(map(size, b)) <= max_bytes or (len(b) == 1 and size(b[0]) > max_bytes)


@given(items_st, st.integers(1, 20), st.integers(1, 400))
def test_a_batch_is_closed_only_when_the_next_item_does_not_fit(items, max_items, max_bytes):
    """Greedy: no call is wasted, so a batch could never have taken the first item of the next one."""
    batches = list(bounded_batches(items, max_items=max_items, max_bytes=max_bytes, size=size))
    for b, following in zip(batches, batches[1:]):
        assert len(b) == max_items or sum(map(size, b)) + size(following[0]) > max_bytes


def test_an_oversized_item_goes_alone_between_its_neighbours():
    items = [("a", 3), ("big", 50), ("b", 3), ("c", 3)]
    assert list(bounded_batches(items, max_items=10, max_bytes=10, size=size)) == [[("a", 3)], [("big", 50)], [("b", 3), ("c", 3)]]


def test_putrecords_shaped_limits():
    assert [len(b) for b in bounded_batches([b"x"] * 1201, max_items=500, max_bytes=5 * 2**20, size=len)] == [500, 500, 201]
    # 900 KiB records: five fit in 5 MiB, the sixth would not
    assert [len(b) for b in bounded_batches([b"y" * 900 * 1024] * 12, max_items=500, max_bytes=5 * 2**20, size=len)] == [5, 5, 2]


def test_it_is_lazy_so_a_large_input_is_not_held_whole():
    consumed = []

    def source():
        for i in range(10**9):
            consumed.append(i)
            yield i

    first = next(bounded_batches(source(), max_items=3, max_bytes=100, size=lambda _: 1))
    assert first == [0, 1, 2] and len(consumed) == 4  # one item of look-ahead


def test_empty_input_gives_no_batch():
    assert list(bounded_batches([], max_items=1, max_bytes=1, size=len)) == []


@pytest.mark.parametrize("kwargs, message", [
    ({"max_items": 0, "max_bytes": 10}, "max_items must be an integer >= 1, got 0"),
    ({"max_items": 2.5, "max_bytes": 10}, "max_items must be an integer >= 1, got 2.5"),
    ({"max_items": 5, "max_bytes": -1}, "max_bytes must be an integer >= 1, got -1"),
    ({"max_items": True, "max_bytes": 10}, "max_items must be an integer >= 1, got True"),
])
def test_bad_limits_fail_at_the_call_not_at_the_first_batch(kwargs, message):
    with pytest.raises(ValueError, match=message):
        bounded_batches([1, 2], size=lambda _: 1, **kwargs)  # no next(): the check is eager


def test_a_negative_size_is_an_error_naming_the_item():
    with pytest.raises(ValueError, match="size\\(\\) of item 2 is -5"):
        list(bounded_batches([1, 1, -5], max_items=10, max_bytes=10, size=lambda x: x))
