"""The deployment dashboard served at ``/``: what is live, what was held back and why, what happened.

One server-rendered page, no build step and no external asset (the gateway's
container may have no egress). Everything is in the HTML, so it reads with
JavaScript off; a small inline script polls ``/status`` and, when anything
changes, swaps in a freshly rendered page body without a full reload.

:func:`gather` reads the disk (blocking: run it in a thread); :func:`render`
is a pure function of the :class:`Page` it returns.
"""

from __future__ import annotations

import collections
import dataclasses
import html
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from skillsyncd.audit.events import Deployed, JournalEvent
from skillsyncd.release.manifest import Manifest, finding_to_json
from skillsyncd.validation.paths import join as paths_join

EVENTS_SHOWN = 50
STATUSES = ("all", "live", "held_back", "not_deployed", "removed")
_GITHUB = re.compile(r"^(?:https?://|ssh://git@|git@)github\.com[:/]([^/\s]+)/([^/\s]+?)(?:\.git)?/?$")


@dataclass(frozen=True)
class SkillRow:
    """One line of the skills table."""

    folder: str
    status: str  # live | held_back | not_deployed | removed
    name: str | None = None
    description: str | None = None
    version: str | None = None
    commit: str | None = None
    content_sha: str | None = None
    why: str | None = None  # for held_back (old version still live?), not_deployed, removed
    findings: tuple[Mapping[str, Any], ...] = ()
    serving: bool = False  # a version of it is live (a held-back skill's last good one counts)

    def shown_under(self, want: str) -> bool:
        """Whether the ``want`` filter lists this row: "live" is every skill that serves,
        the one count status, /status and skillsync_skills_live also give."""
        return want == "all" or self.status == want or (want == "live" and self.serving)


@dataclass(frozen=True)
class Page:
    """Everything the page shows, already read from disk and the daemon."""

    status: Mapping[str, Any]
    source: str | None = None
    previous_release: str | None = None
    went_live: JournalEvent | None = None  # the deployed event: at, trigger
    skills: tuple[SkillRow, ...] = ()
    events: tuple[JournalEvent, ...] = ()
    fleet: tuple[Mapping[str, Any], ...] | None = None  # None: Neo4j not configured
    fleet_error: str | None = None
    metrics: tuple[tuple[str, str], ...] = ()  # (sample, value) as /metrics exposes them


def github_commit_url(source: str | None, commit: str | None) -> str | None:
    """A link to the commit on GitHub when the source is a GitHub repository."""
    if not source or not commit:
        return None
    m = _GITHUB.match(source.strip())
    if m is None:
        return None
    return f"https://github.com/{quote(m.group(1))}/{quote(m.group(2))}/commit/{quote(commit)}"


def skill_rows(manifest: Manifest | None, last_deployed: JournalEvent | None
               ) -> tuple[SkillRow, ...]:
    """Rows from the live manifest, plus what the last deployment removed."""
    if manifest is None:
        return ()
    rows: list[SkillRow] = []
    for s in manifest.skills:
        held = s.status == "held_back"
        status = "held_back" if held else "live" if s.live else "not_deployed"
        why = None
        if held:
            why = ("the last good version stays live" if s.live
                   else "never deployed: the gateway would not load it or it is unsafe")
        rows.append(SkillRow(
            folder=s.name, status=status,
            name=s.effective_name or (s.name if s.live else None),
            description=s.description, version=s.version, commit=s.commit,
            content_sha=s.content_sha, why=why,
            findings=tuple(finding_to_json(f) for f in s.findings), serving=s.live,
        ))
    at = {paths_join(manifest.skills_path, f"{r.folder}/SKILL.md"): i for i, r in enumerate(rows)}
    for f in manifest.layout:
        if f.rule.startswith("usage.") and f.path in at:  # deployed, but how agents get it
            i = at[f.path]
            rows[i] = dataclasses.replace(rows[i], findings=(*rows[i].findings, finding_to_json(f)))
        elif f.rule.startswith("usage."):
            rows.append(SkillRow(folder=f.path, status="warning", why=f"[{f.rule}] {f.message}"))
        else:
            rows.append(SkillRow(folder=f.path, status="not_deployed", why=f"[{f.rule}] {f.message}"))
    for r in last_deployed.skills if last_deployed is not None else ():
        if r.get("change") == "removed":
            rows.append(SkillRow(folder=str(r.get("name")), status="removed", version=r.get("version"),
                                 content_sha=r.get("content_sha"),
                                 why=f"removed by commit {(last_deployed.commit or '-')[:12]}"
                                 if last_deployed else None))
    return tuple(rows)


def last_events(events: Iterable[JournalEvent], n: int = EVENTS_SHOWN) -> tuple[JournalEvent, ...]:
    """The newest ``n`` events, newest first."""
    tail: collections.deque[JournalEvent] = collections.deque(events, maxlen=n)
    return tuple(reversed(tail))


def metric_samples(exposition: str) -> tuple[tuple[str, str], ...]:
    """The samples of a Prometheus text exposition, in order (comments dropped)."""
    out = []
    for line in exposition.splitlines():
        if line and not line.startswith("#"):
            sample, _, value = line.rpartition(" ")
            out.append((sample, value))
    return tuple(out)


# --- HTML -----------------------------------------------------------------------------

_CSS = """
:root{color-scheme:light dark;--ok:#1a7f37;--bad:#cf222e;--warn:#9a6700;--muted:#6e7781}
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;
 padding:0 1rem 2rem;max-width:72rem}
header{display:flex;flex-wrap:wrap;gap:.5rem 1.5rem;align-items:baseline;padding:.8rem 0}
h1{font-size:1.3rem;margin:0}h2{font-size:1.1rem;margin:1.6rem 0 .5rem}
code{font:13px ui-monospace,SFMono-Regular,Menlo,monospace}
.muted{color:var(--muted)}.ok{color:var(--ok)}.bad{color:var(--bad)}.warn{color:var(--warn)}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem;margin:0}
dt{color:var(--muted)}dd{margin:0}
.table{overflow-x:auto}table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:.35rem .5rem;border-bottom:1px solid #8884;vertical-align:top}
th{font-weight:600;white-space:nowrap}
.badge{display:inline-block;padding:0 .45rem;border-radius:.6rem;font-size:.8rem;border:1px solid;
 white-space:nowrap}
nav a{margin-right:.7rem}nav a[aria-current]{font-weight:700;text-decoration:none}
ul.findings{margin:.2rem 0 0;padding-left:1rem}
@media (max-width:40rem){.wide{display:none}th,td{padding:.3rem .25rem}}
"""

# Polls /status; when what it says changes, fetches the page again and swaps <main> in place.
_SCRIPT = """
(function(){
  var seen=null,main=document.querySelector("main");
  document.documentElement.setAttribute("data-js","on");
  function key(s){return [s.current_release,s.last_success,s.failure_streak,s.last_error,
    s.upstream_commit,s.poller_status,(s.audit||{}).lag,JSON.stringify(s.freeze),
    JSON.stringify(s.waiting),JSON.stringify(s.sync_window)].join("|");}
  function tick(){
    fetch("/status",{cache:"no-store"}).then(function(r){return r.json();}).then(function(s){
      var k=key(s);
      if(seen!==null&&k!==seen){
        return fetch(location.href,{cache:"no-store"}).then(function(r){return r.text();}).then(function(t){
          var doc=new DOMParser().parseFromString(t,"text/html"),m=doc.querySelector("main");
          if(m){main.innerHTML=m.innerHTML;main.setAttribute("data-refreshed",String(Date.now()));}
          seen=k;});
      }
      seen=k;
    }).catch(function(){}).then(function(){setTimeout(tick,%d);});
  }
  tick();
})();
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _short(value: Any, n: int = 12) -> str:
    return _e(str(value)[:n]) if value else "-"


def _badge(status: str) -> str:
    cls = {"live": "ok", "held_back": "bad", "not_deployed": "warn", "warning": "warn",
           "removed": "muted"}.get(status, "")
    label = status.replace("_", " ")
    return f'<span class="badge {cls}">{_e(label)}</span>'


def _finding(f: Mapping[str, Any]) -> str:
    where = f"{f.get('path')}:{f.get('line')}" if f.get("line") else str(f.get("path"))
    cls = "bad" if f.get("severity") == "error" else "warn"
    return (f'<li><code>{_e(where)}</code> <span class="{cls}">'
            f"[{_e(f.get('rule'))}]</span> {_e(f.get('message'))}</li>")


def _live_section(page: Page) -> str:
    st, live = page.status, page.went_live
    commit = st.get("last_deployed_sha")
    url = github_commit_url(page.source, commit)
    commit_html = (f'<a href="{_e(url)}"><code>{_short(commit)}</code></a>' if url
                   else f"<code>{_short(commit)}</code>")
    behind = st.get("behind_upstream")
    behind_html = ('<span class="ok">no</span>' if behind is False else
                   '<span class="bad">yes</span>: upstream '
                   f'<code>{_short(st.get("upstream_commit"))}</code>, '
                   f'{_e(st.get("behind_reason") or "not synced yet")}' if behind else
                   '<span class="muted">unknown</span>')
    rows = [
        ("Release", f"<code>{_e(st.get('current_release') or 'none yet')}</code>"),
        ("Commit", commit_html),
        ("Source", _e(page.source or "-")),
        ("Went live", f"{_e(live.timestamp if live else '-')} by "
                      f"{_e((live.trigger if live else None) or '-')}"),
        ("Previous release", f"<code>{_e(page.previous_release or '-')}</code>"),
        ("Behind the remote", behind_html),
    ]
    return "<dl>" + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in rows) + "</dl>"


def _freeze_section(page: Page) -> str:
    """A freeze in effect, and what it keeps waiting (nothing when neither)."""
    freeze, waiting = page.status.get("freeze"), page.status.get("waiting")
    if not freeze and not waiting:
        return ""
    out = '<section id="freeze"><h2>Deployments frozen</h2>' if freeze else \
        '<section id="freeze"><h2>Waiting to go live</h2>'
    if freeze:
        out += (f'<p class="warn">Frozen since {_e(freeze.get("since"))} by {_e(freeze.get("by"))}'
                f'{": " + _e(freeze.get("reason")) if freeze.get("reason") else ""}; '
                f'until {_e(freeze.get("until") or "skillsyncd unfreeze")}. Syncs still fetch '
                "and validate; nothing goes live.</p>")
    if waiting:
        n = waiting.get("counts") or {}
        names = [(k, waiting.get(k) or ()) for k in ("added", "changed", "removed", "held_back")]
        out += (f'<p>Commit <code>{_short(waiting.get("commit"))}</code> waits since '
                f'{_e(waiting.get("since"))}: +{_e(n.get("added", 0))} ~{_e(n.get("changed", 0))} '
                f'-{_e(n.get("removed", 0))}, {_e(n.get("held_back", 0))} held back.</p><dl>'
                + "".join(f"<dt>{_e(k.replace('_', ' '))}</dt><dd>"
                          + (", ".join(f"<code>{_e(x)}</code>" for x in v) or "-") + "</dd>"
                          for k, v in names)
                + "</dl>")
    return out + "</section>"


def _window_section(page: Page) -> str:
    """The sync windows: open or closed now, why, the next change, and each window."""
    window = page.status.get("sync_window")
    if not window:
        return ""
    state = "open" if window.get("open") else '<span class="warn">closed</span>'
    change = window.get("next_change")
    rows = "".join(f"<tr><td>{_e(w.get('name'))}</td><td>{_e(w.get('kind'))}</td>"
                   f"<td><code>{_e(w.get('schedule'))}</code></td><td>{_e(w.get('duration'))}</td>"
                   f"<td>{_e(w.get('timezone'))}</td></tr>" for w in window.get("windows") or ())
    return (f'<section id="sync-window"><h2>Sync windows</h2><p>Deployments: {state} '
            f'({_e(window.get("reason"))}); '
            + (f"next change {_e(change)}" if change else "no change ahead") + ".</p>"
            "<table><thead><tr><th>Window</th><th>Kind</th><th>Schedule</th><th>Duration</th>"
            f"<th>Time zone</th></tr></thead><tbody>{rows}</tbody></table></section>")


def _health_section(page: Page) -> str:
    st = page.status
    audit = st.get("audit") or {}
    streak = int(st.get("failure_streak") or 0)
    rows = [
        ("Ready", '<span class="ok">yes</span>' if st.get("ready") else '<span class="bad">no</span>'),
        ("Poller", _e(st.get("poller_status"))),
        ("Last success", _e(st.get("last_success") or "never")),
        ("Failure streak", f'<span class="{"bad" if streak else "ok"}">{streak}</span>'),
        ("Last error", _e(st.get("last_error") or "-")),
        ("Audit lag", _e(audit.get("lag", "-")) + (" events" if isinstance(audit.get("lag"), int) else "")),
    ]
    out = "<dl>" + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in rows) + "</dl>"
    if page.metrics:
        out += ("<details><summary>Metrics (as /metrics exposes them)</summary><div class=\"table\"><table>"
                "<thead><tr><th>sample</th><th>value</th></tr></thead><tbody>"
                + "".join(f"<tr><td><code>{_e(s)}</code></td><td>{_e(v)}</td></tr>" for s, v in page.metrics)
                + "</tbody></table></div></details>")
    return out


def _gateway_section(page: Page) -> str:
    """What the running gateway said about the last release: "sees N of M" and each difference."""
    conf = page.status.get("gateway")
    if not isinstance(conf, Mapping):
        return ('<p class="muted">Not asked yet: set SKILLSYNC_GATEWAY_URL '
                "(the container does) to confirm each deploy with the gateway.</p>")
    if conf.get("state") != "confirmed":
        return (f'<p><span class="warn">could not ask the gateway</span> about release '
                f"<code>{_e(conf.get('release'))}</code> ({_e(conf.get('state'))}): "
                f"{_e(conf.get('error'))}. Reported, never blamed on the commit.</p>")
    seen, expected = int(conf.get("seen") or 0), int(conf.get("expected") or 0)
    cls = "ok" if seen == expected else "warn"
    out = (f'<p id="gateway-sees">The gateway sees <span class="{cls}">{seen} of {expected}</span> '
           f"skills of release <code>{_e(conf.get('release'))}</code> (asked {_e(conf.get('at'))}).</p>")
    gaps = [g for g in conf.get("gaps") or () if isinstance(g, Mapping)]
    if gaps:
        blamed = set(conf.get("blamed") or ())
        out += ('<div class="table"><table><thead><tr><th>skill</th><th>why</th></tr></thead><tbody>'
                + "".join(f"<tr><td><code>{_e(g.get('skill'))}</code>"
                          + (' <span class="bad">this commit</span>' if g.get("skill") in blamed else "")
                          + f"</td><td>{_e(g.get('detail'))}</td></tr>" for g in gaps)
                + "</tbody></table></div>")
    return out


def _skills_section(page: Page, want: str) -> str:
    counts = {s: sum(1 for r in page.skills if r.shown_under(s)) for s in STATUSES}
    nav = " ".join(
        (f'<a href="?status={s}"' + (' aria-current="page"' if s == want else "")
         + f">{_e(s.replace('_', ' '))} ({counts[s]})</a>")
        for s in STATUSES)
    rows = [r for r in page.skills if r.shown_under(want)]
    body = []
    for r in rows:
        detail = _e(r.description or "")
        if r.why:
            detail += f'<div class="muted">{_e(r.why)}</div>'
        if r.findings:
            detail += '<ul class="findings">' + "".join(_finding(f) for f in r.findings) + "</ul>"
        body.append(
            f'<tr data-status="{_e(r.status)}"><td><code>{_e(r.folder)}</code></td>'
            f'<td>{_e(r.name or "-")}</td>'
            f"<td>{_badge(r.status)}</td><td>{_e(r.version or '-')}</td>"
            f'<td class="wide"><code>{_short(r.commit)}</code></td>'
            f'<td class="wide"><code>{_short(r.content_sha)}</code></td><td>{detail}</td></tr>')
    table = ('<div class="table"><table id="skills"><thead><tr><th>Folder</th><th>Name</th><th>Status</th>'
             '<th>Version</th><th class="wide">Built from</th><th class="wide">Content</th>'
             "<th>Description / why</th></tr></thead><tbody>" + "".join(body) + "</tbody></table></div>")
    if not rows:
        table = '<p class="muted">No skill with this status.</p>'
    return f'<nav aria-label="filter skills by status">{nav}</nav>{table}'


def _gist(ev: JournalEvent) -> str:
    """What the events table says about an event: its status, reason or error."""
    for name in ("status", "reason", "error"):
        value = getattr(ev, name, None)
        if value:
            return str(value)
    return ""


def _events_section(page: Page) -> str:
    if not page.events:
        return '<p class="muted">No audit events yet.</p>'
    rows = "".join(
        f"<tr><td>{_e(ev.timestamp)}</td><td>{_e(ev.kind)}</td>"
        f"<td>{_e(ev.trigger or '-')}</td><td><code>{_short(ev.commit)}</code></td>"
        f"<td class=\"wide\">{_e(ev.release or '-')}</td>"
        f"<td>{_e(_gist(ev))}</td></tr>"
        for ev in page.events)
    return ('<div class="table"><table id="events"><thead><tr><th>When</th><th>Event</th><th>Trigger</th>'
            '<th>Commit</th><th class="wide">Release</th><th>Detail</th></tr></thead><tbody>'
            + rows + "</tbody></table></div>")


_BEHIND = '<span class="bad">behind</span>'
_CURRENT = '<span class="ok">current</span>'
_FROZEN = ' <span class="warn">frozen</span>'


def _fleet_section(page: Page) -> str:
    if page.fleet is None:
        return ""
    if page.fleet_error:
        return f'<h2>Fleet</h2><p class="bad">Neo4j: {_e(page.fleet_error)}</p>'
    rows = "".join(
        f"<tr><td>{_e(r.get('replica'))}</td><td><code>{_short(r.get('commit'))}</code></td>"
        f"<td>{_BEHIND if r.get('behind') else _CURRENT}"
        f"{_FROZEN if r.get('frozen') else ''}"
        f"</td><td>{_e(r.get('last_seen') or '-')}</td></tr>" for r in page.fleet)
    return ('<h2>Fleet</h2><div class="table"><table id="fleet"><thead><tr><th>Replica</th><th>Commit</th>'
            "<th>State</th><th>Last contact</th></tr></thead><tbody>" + rows + "</tbody></table></div>")


def render(page: Page, want: str = "all", poll_ms: int = 5000) -> str:
    """The whole page; ``want`` filters the skills table (one of STATUSES)."""
    want = want if want in STATUSES else "all"
    st = page.status
    title = f"skillsyncd · {st.get('replica') or ''}".strip(" ·")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>"
        f"<header><h1>{_e(title)}</h1><span class=\"muted\">version {_e(st.get('version'))}</span></header>"
        "<main>"
        f"{_freeze_section(page)}"
        f"{_window_section(page)}"
        f"<section id=\"live\"><h2>Live release</h2>{_live_section(page)}</section>"
        f"<section id=\"health\"><h2>Health</h2>{_health_section(page)}</section>"
        f"<section id=\"gateway\"><h2>Gateway</h2>{_gateway_section(page)}</section>"
        f"<section id=\"skills-section\"><h2>Skills</h2>{_skills_section(page, want)}</section>"
        f"<section id=\"events-section\"><h2>Last {EVENTS_SHOWN} audit events</h2>"
        f"{_events_section(page)}</section>"
        f"{_fleet_section(page)}"
        "</main>"
        f"<script>{_SCRIPT % poll_ms}</script></body></html>\n"
    )


# --- reading what the page shows (blocking: run in a thread) --------------------------

FLEET_TTL = 30.0  # seconds a fleet answer from Neo4j is reused


@dataclass
class _FleetCache:
    at: float = -1e9
    rows: tuple[Mapping[str, Any], ...] = ()
    error: str | None = None


_fleet_cache = _FleetCache()


def gather(daemon: Any, doc: Mapping[str, Any], exposition: str) -> Page:
    """The page's data: the /status document ``doc``, the live manifest, the journal, the fleet."""
    import time

    from skillsyncd.audit.commands import FLEET_QUERY, fleet_rows, open_journal
    from skillsyncd.audit.history import select
    from skillsyncd.errors import ReleaseError
    from skillsyncd.release.releases import Releases

    cfg = daemon.cfg
    current = doc.get("current_release")
    manifest: Manifest | None = None
    if current:
        try:
            manifest = Releases(cfg.state_dir).manifest(current)
        except ReleaseError:
            manifest = None
    try:
        notable = list(select(open_journal(cfg).read()))
    except OSError:
        notable = []
    went_live = next((e for e in reversed(notable)
                      if isinstance(e, Deployed) and e.release == current), None)
    fleet: tuple[Mapping[str, Any], ...] | None = None
    fleet_error = None
    if cfg.neo4j_uri:
        if time.monotonic() - _fleet_cache.at > FLEET_TTL:
            from skillsyncd.audit.neo4j import Neo4jSink, SinkError

            sink = Neo4jSink(cfg, open_journal(cfg))
            try:
                _fleet_cache.rows, _fleet_cache.error = tuple(fleet_rows(sink.query(FLEET_QUERY))), None
            except SinkError as exc:
                _fleet_cache.error = str(exc)
            finally:
                sink.close()
            _fleet_cache.at = time.monotonic()
        fleet, fleet_error = _fleet_cache.rows, _fleet_cache.error
    return Page(
        status=doc,
        source=manifest.source if manifest else None,
        previous_release=manifest.previous_release if manifest else None,
        went_live=went_live,
        skills=skill_rows(manifest, went_live),
        events=last_events(notable),
        fleet=fleet,
        fleet_error=fleet_error,
        metrics=metric_samples(exposition),
    )
