"""The shared Unsplash account's decisions (processors/fetcher/quota.py), as pure functions:
windows, the budget, pacing, and the corrections answers bring."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise

from processors.fetcher.quota import Account, Take, Wait, exhausted, observe, take, unanswered

T0 = datetime(2026, 12, 6, 12, tzinfo=UTC)
WINDOW = 100.0


def _at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_the_first_request_of_a_window_opens_it_and_alone_learns_the_allowance() -> None:
    first = take(Account(), T0, WINDOW, reserve=1)
    assert first == Take(Account(limit=None, used=1, ends=_at(WINDOW), probed_at=T0))
    waiting = take(first.account, _at(0.05), WINDOW, reserve=1)
    assert isinstance(waiting, Wait)
    assert not waiting.spent  # only until the first answer
    learnt = observe(first.account, limit=50, remaining=49)
    assert learnt == Account(limit=50, used=1, ends=_at(WINDOW), probed_at=T0)
    assert isinstance(take(learnt, _at(0.1), WINDOW, reserve=1), Take)
    # An unanswered probe gives its place back; an unanswered request otherwise counts.
    assert unanswered(first.account).used == 0
    assert unanswered(learnt).used == 1


def test_never_beyond_the_budget_and_spread_over_the_window() -> None:
    account, sent = Account(limit=21, used=0, ends=None), []
    now = T0
    while now < _at(WINDOW):
        decided = take(account, now, WINDOW, reserve=1)
        if isinstance(decided, Take):
            account = decided.account
            sent.append((now - T0).total_seconds())
        else:
            assert decided.until > now
            now = decided.until
    assert len(sent) == 20  # the allowance less the reserve
    assert sent[:2] == [0, 0]  # a tenth of the budget at once
    gaps = [b - a for a, b in pairwise(sent[1:])]
    assert all(abs(gap - WINDOW / 20) < 1e-6 for gap in gaps)  # the rest evenly spread
    spent = take(account, _at(WINDOW - 1), WINDOW, reserve=1)
    assert spent == Wait(_at(WINDOW), spent=True)
    assert isinstance(take(account, _at(WINDOW), WINDOW, reserve=1), Take)  # a new window


def test_answers_correct_the_account_and_a_rate_limit_spends_it() -> None:
    account = Account(limit=50, used=3, ends=_at(WINDOW))
    assert observe(account, 50, 40).used == 10  # another app on the key used 7
    assert observe(account, 50, 49).used == 3  # in flight, not counted there yet
    limited = exhausted(account, _at(10), pause_s=60)
    assert limited == Account(limit=50, used=50, ends=_at(WINDOW))
    late = exhausted(account, _at(WINDOW + 5), pause_s=60)  # Unsplash's window is later
    assert late.ends == _at(WINDOW + 65)
    assert take(late, _at(WINDOW + 6), WINDOW, reserve=1) == Wait(_at(WINDOW + 65), spent=True)


def test_a_probe_whose_fetcher_died_is_taken_for_lost() -> None:
    # The request meant to tell the allowance went, and its fetcher was killed before the
    # answer: after a while another fetcher may ask, instead of waiting out the window.
    probing = take(Account(), T0, 3600, reserve=1)
    assert isinstance(probing, Take)
    assert isinstance(take(probing.account, _at(29), 3600, reserve=1), Wait)
    again = take(probing.account, _at(31), 3600, reserve=1)
    assert isinstance(again, Take)
    assert again.account.probed_at == _at(31)
