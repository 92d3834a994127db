"""Where released requests go: each to the partition with the fewest
documents released and unsettled, so every worker gets work and a new
upload lands behind the fewest."""

from __future__ import annotations

from ingest.release import spread


def test_requests_fill_the_emptiest_partitions_first() -> None:
    assert spread(3, {0: 2, 1: 0, 2: 1}, 3) == [1, 1, 2]


def test_partitions_nothing_was_released_to_count_as_empty() -> None:
    assert spread(4, {}, 4) == [0, 1, 2, 3]
    assert spread(2, {0: 1, 1: 1}, 3) == [2, 0]


def test_a_lone_upload_goes_where_the_fewest_are_ahead_of_it() -> None:
    # One tenant's window of 8 over six partitions, then another's note.
    loads = dict(enumerate([2, 1, 2, 1, 1, 1]))
    assert spread(1, loads, 6) == [1]
