"""When to sync next: interval, jitter, exponential backoff, coalescing, trigger rate limit.

The functional core of the loop. No clocks, no randomness, no I/O: the caller
passes ``now`` (monotonic seconds) and ``rand`` (uniform in [0, 1)), so every
rule here is a plain unit test away.
"""

from __future__ import annotations

from dataclasses import dataclass

from skillsyncd.model import OK_STATUSES

# Syncs that asked the remote and got an answer, even an unwelcome one (a commit
# refused by validation is remembered and not fetched again): they end a failure
# streak. Everything else ("failed", "rolled_back") backs off.
OK_RESULTS = OK_STATUSES
# Triggers that answer an outside event; these are rate limited, polls are not.
EVENT_TRIGGERS = frozenset({"webhook", "signal"})


@dataclass(frozen=True)
class Timing:
    interval: float = 60.0
    jitter: float = 0.1  # fraction of the delay, spread both ways
    backoff_max: float = 900.0
    trigger_burst: int = 3  # event-triggered syncs allowed back to back
    trigger_refill: float = 5.0  # seconds to earn one more


def poll_delay(timing: Timing, failure_streak: int, rand: float) -> float:
    """Seconds until the next poll.

    Healthy: ``interval``. After n failures in a row: ``interval * 2**n``, capped
    at ``backoff_max`` (but never below ``interval``). Jitter spreads replicas so
    they do not hit the remote in step.
    """
    base = timing.interval
    if failure_streak > 0:
        grown = timing.interval * 2 ** min(failure_streak, 32)
        base = max(timing.interval, min(timing.backoff_max, grown))
    spread = base * timing.jitter * (2.0 * rand - 1.0)
    return max(0.0, base + spread)


def is_failure(result: str) -> bool:
    return result not in OK_RESULTS


@dataclass(frozen=True)
class Decision:
    """What the loop does now: run a sync for ``trigger``, or sleep ``wait`` seconds."""

    trigger: str | None
    wait: float = 0.0


class Scheduler:
    """The loop's memory of what is due.

    Triggers arriving while a sync runs collapse into one pending follow-up (the
    first trigger names it). Event triggers spend a token; with none left the
    sync is deferred until one is earned, never dropped.
    """

    def __init__(self, timing: Timing, now: float) -> None:
        self.timing = timing
        self.failure_streak = 0
        self.pending: str | None = "startup"
        self.pending_urgent = False  # a signed push of a head not yet deployed: no token spent
        self.next_poll = now
        self.running = False
        self._tokens = float(timing.trigger_burst)
        self._tokens_at = now

    def request(self, trigger: str, urgent: bool = False) -> bool:
        """Ask for a sync. Returns False when it merged into one already pending.

        ``urgent`` (a signed push whose head is not deployed yet) skips the token bucket:
        coalescing already bounds the work, and a burst of real pushes must not queue
        behind the refill. The bucket keeps guarding plain triggers and replays.
        """
        self.pending_urgent = self.pending_urgent or urgent
        if self.pending is not None:
            return False
        self.pending = trigger
        return True

    def decide(self, now: float) -> Decision:
        if self.running:
            raise RuntimeError("decide() called while a sync is running")
        self._refill(now)
        if self.pending is not None:
            if self.pending not in EVENT_TRIGGERS or self.pending_urgent:
                return self._start(self.pending)
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return self._start(self.pending)
            token_wait = (1.0 - self._tokens) * self.timing.trigger_refill
            if now >= self.next_poll:
                return self._start("poll")
            return Decision(None, min(token_wait, self.next_poll - now))
        if now >= self.next_poll:
            return self._start("poll")
        return Decision(None, self.next_poll - now)

    def finished(self, result: str, now: float, rand: float) -> float:
        """Record a finished sync; returns the delay until the next poll."""
        self.running = False
        self.failure_streak = self.failure_streak + 1 if is_failure(result) else 0
        delay = poll_delay(self.timing, self.failure_streak, rand)
        self.next_poll = now + delay
        return delay

    def _start(self, trigger: str) -> Decision:
        self.pending = None
        self.pending_urgent = False
        self.running = True
        return Decision(trigger)

    def _refill(self, now: float) -> None:
        earned = (now - self._tokens_at) / self.timing.trigger_refill
        self._tokens = min(float(self.timing.trigger_burst), self._tokens + earned)
        self._tokens_at = now
