"""Which offset each partition may commit: never past a record whose effect is not durable."""

from __future__ import annotations

import heapq
from collections import defaultdict


class OffsetTracker:
    """Tracks, per partition, the records seen and those still held (effect pending).

    The committable offset is the lowest held offset, or one past the last seen record when
    nothing is held: committing it can never skip a record whose effect is not yet durable.

    The lowest held offset is asked for after every fetch, and a delay processor holds
    every pending job's record (thousands): a heap of the held offsets, those released
    dropped from it once they reach its top, answers without looking at them all (min()
    over the held set did, and was 2.6 % of `jobline run`'s samples at 50 creations/s).
    """

    def __init__(self) -> None:
        self._next: dict[int, int] = {}
        self._held: defaultdict[int, set[int]] = defaultdict(set)
        self._lowest: defaultdict[int, list[int]] = defaultdict(list)  # heaps of the held
        self._committed: dict[int, int] = {}

    def seen(self, partition: int, offset: int) -> None:
        self._next[partition] = max(self._next.get(partition, 0), offset + 1)

    def hold(self, partition: int, offset: int) -> None:
        self.seen(partition, offset)
        held = self._held[partition]
        if offset not in held:
            held.add(offset)
            heapq.heappush(self._lowest[partition], offset)

    def release(self, partition: int, offset: int) -> None:
        self._held[partition].discard(offset)

    def next_offset(self, partition: int) -> int | None:
        return self._next.get(partition)

    def committable(self, partition: int) -> int | None:
        held, lowest = self._held.get(partition), self._lowest.get(partition)
        if held and lowest:
            while lowest[0] not in held:  # released: drop it (a held one is in the heap)
                heapq.heappop(lowest)
            return lowest[0]
        if lowest:
            lowest.clear()  # nothing held: every entry was released
        return self._next.get(partition)

    def to_commit(self) -> dict[int, int]:
        """Offsets that moved since the last `committed()` call."""
        result = {}
        for partition in self._next:
            offset = self.committable(partition)
            if offset is not None and offset != self._committed.get(partition):
                result[partition] = offset
        return result

    def committed(self, offsets: dict[int, int]) -> None:
        self._committed.update(offsets)

    def forget(self, partitions: set[int]) -> None:
        for partition in partitions:
            self._next.pop(partition, None)
            self._held.pop(partition, None)
            self._lowest.pop(partition, None)
            self._committed.pop(partition, None)
