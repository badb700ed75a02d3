"""The loop's functional core: delays, backoff, coalescing and the trigger rate limit."""

from __future__ import annotations

import pytest

from skillsyncd.daemon.schedule import Decision, Scheduler, Timing, is_failure, poll_delay

T = Timing(interval=60, jitter=0.1, backoff_max=900, trigger_burst=2, trigger_refill=5)


def test_poll_delay_jitter_bounds() -> None:
    assert poll_delay(T, 0, 0.5) == 60
    assert poll_delay(T, 0, 0.0) == pytest.approx(54)
    assert poll_delay(T, 0, 0.999999) == pytest.approx(66, abs=1e-3)


def test_backoff_doubles_caps_and_never_drops_below_interval() -> None:
    no_jitter = Timing(interval=60, jitter=0, backoff_max=900)
    assert [poll_delay(no_jitter, n, 0.5) for n in range(6)] == [60, 120, 240, 480, 900, 900]
    assert poll_delay(no_jitter, 10_000, 0.5) == 900  # no overflow
    slow = Timing(interval=1200, jitter=0, backoff_max=900)
    assert poll_delay(slow, 3, 0.5) == 1200


def test_failure_classes() -> None:
    for ok in ("deployed", "no_change", "skipped_bad", "rejected"):
        assert not is_failure(ok)
    for bad in ("failed", "rolled_back"):
        assert is_failure(bad)


def _finish(s: Scheduler, result: str, now: float) -> float:
    return s.finished(result, now, 0.5)


def test_startup_then_interval_then_backoff_and_reset() -> None:
    s = Scheduler(T, now=0)
    assert s.decide(0) == Decision("startup")
    assert _finish(s, "deployed", 1) == 60
    assert s.decide(30) == Decision(None, 31)
    assert s.decide(61) == Decision("poll")
    assert _finish(s, "failed", 62) == 120
    assert s.decide(100).trigger is None
    assert s.decide(182) == Decision("poll")
    assert _finish(s, "failed", 183) == 240
    assert s.failure_streak == 2
    assert s.decide(423) == Decision("poll")
    assert _finish(s, "no_change", 424) == 60
    assert s.failure_streak == 0


def test_triggers_during_a_sync_coalesce_into_one_follow_up() -> None:
    s = Scheduler(T, now=0)
    assert s.decide(0).trigger == "startup"
    assert s.request("webhook") is True
    assert s.request("webhook") is False
    assert s.request("signal") is False
    _finish(s, "deployed", 1)
    assert s.decide(1) == Decision("webhook")
    _finish(s, "no_change", 2)
    assert s.decide(2).trigger is None  # nothing else queued


def test_decide_refuses_while_running() -> None:
    s = Scheduler(T, now=0)
    s.decide(0)
    with pytest.raises(RuntimeError):
        s.decide(0)


def test_event_triggers_are_rate_limited_but_never_dropped() -> None:
    s = Scheduler(T, now=0)
    s.decide(0)
    _finish(s, "deployed", 0)
    for _ in range(2):  # the burst
        s.request("webhook")
        assert s.decide(0).trigger == "webhook"
        _finish(s, "no_change", 0)
    s.request("webhook")
    d = s.decide(0)
    assert d.trigger is None and d.wait == pytest.approx(5)
    assert s.decide(5).trigger == "webhook"  # one token earned
    _finish(s, "no_change", 5)


def test_polls_are_not_rate_limited_and_absorb_a_deferred_trigger() -> None:
    s = Scheduler(Timing(interval=1, jitter=0, backoff_max=10, trigger_burst=1, trigger_refill=100),
                  now=0)
    s.decide(0)
    _finish(s, "deployed", 0)
    s.request("signal")
    assert s.decide(0).trigger == "signal"
    _finish(s, "no_change", 0)
    s.request("signal")
    assert s.decide(0.5) == Decision(None, 0.5)  # waits for the poll, not 100 s
    assert s.decide(1).trigger == "poll"
    _finish(s, "no_change", 1)
    assert s.pending is None


def test_an_urgent_trigger_skips_the_bucket_and_a_plain_one_does_not() -> None:
    """A signed push of a head not yet deployed starts at once, however many came before."""
    s = Scheduler(T, now=0)
    s.decide(0)
    _finish(s, "deployed", 0)
    for i in range(6):  # a burst of real pushes, each with a new head
        s.request("webhook", urgent=True)
        assert s.decide(0.1 * i).trigger == "webhook"
        _finish(s, "deployed", 0.1 * i)
    for _ in range(T.trigger_burst):  # plain triggers (replays, SIGHUP) still spend the bucket,
        s.request("signal")  # which the urgent ones left full
        assert s.decide(0.6).trigger == "signal"
        _finish(s, "no_change", 0.6)
    s.request("signal")
    d = s.decide(0.6)
    assert d.trigger is None and d.wait > 0


def test_an_urgent_trigger_joins_a_pending_one() -> None:
    s = Scheduler(T, now=0)
    s.decide(0)
    _finish(s, "deployed", 0)
    for _ in range(2):
        s.request("webhook")
        s.decide(0)
        _finish(s, "no_change", 0)
    s.request("webhook")  # deferred: no token left
    assert s.decide(0).trigger is None
    assert s.request("webhook", urgent=True) is False  # merged into the pending one...
    assert s.decide(0).trigger == "webhook"  # ...which now starts at once
    assert s.pending_urgent is False
