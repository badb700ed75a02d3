"""How a sync ends, as values: one pure constructor per ending.

The pipeline decides *which* ending a sync reaches; these functions say what
that ending records (the fields of its :class:`SyncOutcome`), so the step list
stays a list of steps and every ending names what served before the same way.
"""

from __future__ import annotations

from typing import Any

from skillsyncd.model import Event, Finding, Severity, Status
from skillsyncd.sync.freeze import Freeze
from skillsyncd.sync.values import Candidate, Live, Run, SyncOutcome, Verdict
from skillsyncd.sync.windows import WindowClosed

Deferral = Freeze | WindowClosed  # what keeps a staged release waiting: a freeze or the windows


def _before(run: Run, live: Live) -> dict[str, Any]:
    """The fields every ending shares: who asked, and what served when it started."""
    return dict(sync_id=run.sync_id, trigger=run.trigger, previous_commit=live.commit,
                previous_release=live.current)


def skipped(run: Run, live: Live, head: str, status: Status, reason: str | None = None,
            freeze: Deferral | None = None) -> SyncOutcome:
    """Nothing staged: no change, a commit marked bad or rejected, or a freeze (or window) already
    waiting."""
    event = Event.NO_CHANGE if status is Status.NO_CHANGE else None
    return SyncOutcome(status=status, event=event, reason=reason, commit=head, release=live.current,
                       upstream=head, freeze_until=freeze.until if freeze else None,
                       window=_window(freeze), **_before(run, live))


def refused(run: Run, live: Live, commit: str, settings: str, policy: str,
            findings: tuple[Finding, ...], reason: str) -> SyncOutcome:
    """The whole commit was refused while staging (validation under reject, the guard, a signature)."""
    return SyncOutcome(status=Status.REJECTED, event=Event.REJECTED, commit=commit, upstream=commit,
                       settings=settings, policy=policy, findings=findings, reason=reason,
                       **_before(run, live))


def _staged(run: Run, live: Live, c: Candidate, head: str) -> dict[str, Any]:
    return dict(commit=c.manifest.commit, upstream=head, plan=c.plan, held_back=c.held,
                findings=c.findings, settings=c.manifest.settings, skills=c.skills,
                **_before(run, live))


def frozen(run: Run, live: Live, c: Candidate, head: str, freeze: Deferral) -> SyncOutcome:
    """Staged and validated, kept from going live by a freeze or the sync windows; what served
    still serves."""
    return SyncOutcome(status=Status.FROZEN, event=Event.FROZEN, release=live.current,
                       reason=freeze.describe(), freeze_until=freeze.until, window=_window(freeze),
                       **_staged(run, live, c, head))


def _window(deferral: Deferral | None) -> str | None:
    return deferral.window if isinstance(deferral, WindowClosed) else None


def vetoed(run: Run, live: Live, c: Candidate, head: str, reason: str) -> SyncOutcome:
    """The pre-flip command refused the staged release; it is a rejection like validation's."""
    finding = Finding("veto.refused", Severity.ERROR, ".", reason)
    return SyncOutcome(status=Status.REJECTED, event=Event.REJECTED, policy="veto", reason=reason,
                       release=live.current, **{**_staged(run, live, c, head), "findings": (finding,)})


def deployed(run: Run, live: Live, c: Candidate, head: str, verdict: Verdict, source: str,
             ref: str) -> SyncOutcome:
    """The release went live and passed its checks (notes: problems not blamed on it)."""
    return SyncOutcome(status=Status.DEPLOYED, event=Event.DEPLOYED, release=c.release,
                       skills_live=len(c.manifest.live), history_rewritten=c.history_rewritten,
                       reason="; ".join(verdict.notes)[:2000] or None, source=source, ref=ref,
                       **_staged(run, live, c, head))


def failed(run: Run, live: Live, kind: Event, error: Exception) -> SyncOutcome:
    """The sync failed; ``live`` is what serves now (re-read: recovery may have changed it)."""
    before = {**_before(run, live), "previous_commit": live.state.commit}
    return SyncOutcome(status=Status.FAILED, event=kind, reason=str(error), **before)
