"""Numbers for new jobs from leased blocks: unique, rising, one reservation per block."""

from __future__ import annotations

from api.numbering import SeqLease


class Counter:
    """The store's counter: hands out the next `count` numbers."""

    def __init__(self) -> None:
        self.last = 0
        self.reservations: list[int] = []

    async def reserve(self, count: int) -> range:
        self.reservations.append(count)
        self.last += count
        return range(self.last - count + 1, self.last + 1)


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


async def test_numbers_are_unique_and_rising_and_blocks_follow_the_rate() -> None:
    counter, clock = Counter(), Clock()
    lease = SeqLease(counter.reserve, now=clock, lease_s=1.0, most=64)
    taken: list[int] = []
    for _ in range(200):  # a busy second: batches of 3, 5 ms apart
        taken += await lease.take(3)
        clock.t += 0.005
    assert taken == sorted(set(taken))
    assert len(counter.reservations) < 20, counter.reservations  # not one per batch
    assert max(counter.reservations) == 64  # grown to the cap, not beyond
    clock.t += 5  # idle: the block expires, what is left of it is given up
    before = counter.last
    first = await lease.take(1)
    assert first[0] == before + 1
    assert taken[-1] < first[0]


async def test_an_idle_api_reserves_one_number_at_a_time() -> None:
    counter, clock = Counter(), Clock()
    lease = SeqLease(counter.reserve, now=clock, lease_s=1.0)
    numbers = []
    for _ in range(5):
        numbers += await lease.take(1)
        clock.t += 10  # one creation every 10 s
    assert numbers == [1, 2, 3, 4, 5]  # nothing given up
    assert counter.reservations == [1, 1, 1, 1, 1]


async def test_a_batch_larger_than_the_block_gets_a_block_of_its_own_size() -> None:
    counter, clock = Counter(), Clock()
    lease = SeqLease(counter.reserve, now=clock, most=10)
    assert list(await lease.take(1)) == [1]
    assert list(await lease.take(50)) == list(range(2, 52))
