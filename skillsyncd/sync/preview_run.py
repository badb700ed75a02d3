"""The shell of ``skillsyncd plan``: read what serves, fetch the commit, judge it, change nothing.

The live side is read, never written: from the state dir (``current``, its
manifest, state.json and the freeze, without the deploy lock and without
creating the dir), or from a manifest ``skillsyncd status --manifest`` exported
(``--against``), for a CI job that has no state dir. The commit is fetched into a
scratch mirror in a temporary folder, removed afterwards, and planned and judged
by the stage step's own :func:`~skillsyncd.sync.stage.evaluate`; no release is
staged, nothing is flipped, nothing is journalled.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
import tempfile
from pathlib import Path
from typing import Any

import structlog
from dulwich.repo import Repo

from skillsyncd.config import Config
from skillsyncd.errors import EXIT_OK, ConfigError, ReleaseError
from skillsyncd.release.manifest import EMPTY, Manifest, export_json, read_export
from skillsyncd.release.releases import Releases
from skillsyncd.source.remote import Source
from skillsyncd.source.transport import local_path
from skillsyncd.sync.decide import skip_reason
from skillsyncd.sync.freeze import Freeze, active_freeze
from skillsyncd.sync.preview import LiveView, Preview, Target, preview
from skillsyncd.sync.preview_render import render
from skillsyncd.sync.stage import evaluate
from skillsyncd.sync.state import State, load_state
from skillsyncd.sync.values import Live

log = structlog.get_logger(__name__)


def run_preview(cfg: Config, against: Path | None = None) -> Preview:
    """What deploying ``cfg.ref`` of ``cfg.repo`` would do to the live release."""
    live, state = live_from_manifest(against) if against else live_from_state_dir(cfg)
    current = live.manifest.release or None
    with tempfile.TemporaryDirectory(prefix="skillsyncd-plan-") as scratch:
        # Everything the fetch and the gate keep (mirror, fingerprint key) goes to scratch.
        scfg = dataclasses.replace(cfg, state_dir=Path(scratch) / "state")
        source = Source(scfg)
        head = _head(scfg, source)
        log.info("plan_fetching", commit=head[:12], ref=cfg.ref, source=source.safe_url)
        fetched = source.fetch(head)
        # A held-back skill's live version is read from the state dir's store (read only);
        # an exported manifest has none, so the usage rules then see only the commit's skills.
        store = (Path(scratch) / "no-store") if against else Releases(cfg.state_dir).store.root

        def stored(sha: str) -> Path:
            return store / sha

        with contextlib.closing(Repo(str(scfg.mirror_dir))) as repo:
            ev = evaluate(scfg, Live(state, current, live.manifest), source, fetched, repo, stored,
                          ci=against is not None)
    target = Target(commit=fetched.commit, ref=cfg.ref, source=source.safe_url)
    skip = skip_reason(state, current, fetched.commit, False, cfg.release_settings(),
                       frozen=live.freeze is not None)
    return preview(target, live, ev, (cfg.gateway_max_candidates, cfg.gateway_max_skills), skip)


def _head(cfg: Config, source: Source) -> str:
    """The commit to preview; ``HEAD`` of a local checkout is the commit checked out."""
    path = local_path(source.url)
    if cfg.ref == "HEAD" and path is not None:
        try:
            with contextlib.closing(Repo(path)) as repo:
                return repo.head().decode()
        except (OSError, KeyError, ValueError) as exc:
            raise ConfigError(f"{path} has no HEAD to preview ({exc}); pass --ref BRANCH or "
                              "a full commit SHA") from None
    return source.probe()


def live_from_state_dir(cfg: Config) -> tuple[LiveView, State]:
    """The live release of the state dir, read only (a missing dir is an error, not created)."""
    if not cfg.state_dir.is_dir():
        raise ConfigError(
            f"no state dir at {cfg.state_dir}, so nothing is live there: pass --state-dir "
            "(SKILLSYNC_STATE_DIR); away from it, `plan --against MANIFEST` compares with a "
            "manifest exported by `skillsyncd status --manifest`")
    state = load_state(cfg.state_file)
    view = LiveView(manifest=_live_manifest(Releases(cfg.state_dir)), against=f"state dir {cfg.state_dir}",
                    freeze=active_freeze(cfg), bad_commits=dict(state.bad_commits))
    return view, state


def _live_manifest(releases: Releases) -> Manifest:
    """The manifest behind ``current`` (EMPTY: nothing live). Read twice at most: a sync
    may flip ``current`` and prune the release it pointed at between the two reads."""
    for attempt in (1, 2):
        current = releases.current()
        if current is None:
            return EMPTY
        try:
            return releases.manifest(current)
        except ReleaseError:
            if attempt == 2:
                raise
    return EMPTY


def live_from_manifest(path: Path) -> tuple[LiveView, State]:
    """The live release as an exported manifest describes it (``status --manifest``)."""
    try:
        manifest, extra = read_export(path)
    except OSError as exc:
        raise ConfigError(f"--against {path}: {exc.strerror or exc}") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"--against {path} is not a skillsyncd manifest ({exc}); export one "
                          "with `skillsyncd status --manifest > FILE`") from None
    bad = extra.get("bad_commits")
    view = LiveView(manifest=manifest, against=f"manifest {path}", freeze=_freeze(extra),
                    freeze_known="freeze" in extra,
                    bad_commits={str(k): str(v) for k, v in bad.items()}
                    if isinstance(bad, dict) else None,
                    exported=str(extra["exported"]) if extra.get("exported") else None)
    state = State(commit=manifest.commit or None, release=manifest.release or None,
                  settings=manifest.settings, bad_commits=dict(view.bad_commits or {}))
    return view, state


def _freeze(extra: dict[str, Any]) -> Freeze | None:
    """The exported freeze, if it is still in effect now (one past its ``until`` has ended)."""
    from skillsyncd.audit.journal import now_iso

    raw = extra.get("freeze")
    if not isinstance(raw, dict) or not isinstance(raw.get("since"), str):
        return None
    text = {k: (str(raw[k]) if raw.get(k) is not None else None) for k in ("reason", "until")}
    found = Freeze(since=raw["since"], by=str(raw.get("by") or "cli"), **text)
    return found if found.active_at(now_iso()) else None


def live_state(cfg: Config) -> tuple[Manifest, dict[str, Any]]:
    """What ``status --manifest`` exports: the live manifest and the state beside it."""
    from skillsyncd.audit.journal import now_iso

    view, _ = live_from_state_dir(cfg)
    return view.manifest, {
        "exported": now_iso(), "state_dir": str(cfg.state_dir),
        "freeze": view.freeze.to_dict() if view.freeze else None,
        "bad_commits": dict(view.bad_commits or {}),
    }


def cmd_plan(cfg: Config, against: str | None, fmt: str) -> int:
    """``skillsyncd plan``: the preview on stdout; its exit code (sync/preview.py)."""
    cfg.require_repo()
    found = run_preview(cfg, Path(against) if against else None)
    print(render(found, fmt))
    return found.exit_code


def cmd_export_manifest(cfg: Config) -> int:
    """``skillsyncd status --manifest``: the live manifest and the state beside it, on stdout."""
    manifest, extra = live_state(cfg)
    sys.stdout.write(export_json(manifest, extra).decode())
    return EXIT_OK
