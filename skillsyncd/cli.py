"""The ``skillsyncd`` command line.

Logs are JSON lines on stdout; human summaries and errors go to stderr, so a
pipe into a log collector stays machine-readable. Exit codes: see errors.py.
"""

from __future__ import annotations

# Only light imports up here: `skillsyncd run` must record a SIGTERM before the
# heavy ones (see stopping.py); each command imports what it needs when it runs.
import argparse
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from skillsyncd import __version__
from skillsyncd.daemon.stopping import PENDING, StopRequested
from skillsyncd.errors import (
    EXIT_FROZEN,
    EXIT_OK,
    EXIT_REJECTED,
    EXIT_SYNC_FAILED,
    EXIT_USAGE,
    ConfigError,
    SkillsyncError,
)
from skillsyncd.model import Status

if TYPE_CHECKING:
    from skillsyncd.config import Config

COMMANDS = ("run", "status", "releases", "rollback", "validate", "audit", "fleet", "freeze",
            "unfreeze", "plan")


# The configuration flags each subcommand uses, the ones its --help lists (``run``: all).
# The others are still accepted after its name, and ignored (see _Only).
_COMMON = frozenset({"--config", "--log-level"})
_TAKES: dict[str, frozenset[str]] = {
    "status": _COMMON | {"--state-dir", "--ref"},
    "releases": _COMMON | {"--state-dir"},
    "rollback": _COMMON | {"--state-dir"},
    "validate": _COMMON | {"--skills-path", "--strict"},
    "audit": _COMMON | {"--state-dir"},
    "fleet": _COMMON,
    "freeze": _COMMON | {"--state-dir"},
    "unfreeze": _COMMON | {"--state-dir"},
    "plan": _COMMON | {"--state-dir", "--repo", "--ref", "--skills-path", "--on-invalid", "--strict"},
}

# One line per subcommand under its usage (``skillsyncd COMMAND --help``).
_DESCRIPTIONS = {
    "run": "Run the daemon: poll the repository (and take webhooks), deploy each new commit, "
           "serve /status, /metrics and the dashboard. With --once: one sync, then exit.",
    "status": "Show what is deployed and how the last sync went, read from the state dir "
              "(never written).",
    "releases": "List the releases kept in the state dir; * marks the live one.",
    "rollback": "Flip back to an earlier release (default: the previous one); the commit rolled "
                "away from is not redeployed automatically.",
    "validate": "Validate a skills repository's working tree (or one skill folder) with the "
                "deploy's rules, for the repository's CI; exit 4 on any error, or when no skill "
                "is found.",
    "audit": "Show the deployment history from the journal, or push its backlog to Neo4j.",
    "fleet": "Show which replica runs which commit, from the audit graph in Neo4j.",
    "freeze": "Freeze deployments: syncs still fetch, plan and validate (status shows what "
              "waits), nothing goes live until 'unfreeze' or --until. Survives restarts.",
    "unfreeze": "Lift the freeze; the next sync deploys what waits.",
    "plan": "Preview what deploying --ref of --repo (a pull request's head, a branch, a local "
            "checkout's HEAD) would do to the live release: skills added, changed, removed, held "
            "back, over the gateway's caps, blocked by a freeze. Read only: stages, flips and "
            "records nothing. Exit 4 when anything would be held back or refused.",
}


class _Refused(argparse.Action):
    """A flag the command has no use for: refused by name (exit 2), never shown in its help."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        parser.error(f"{option_string} is not an option of '{parser.prog}' "
                     f"(see '{parser.prog} --help')")


class _Only:
    """An argument group whose help shows only the flags in ``takes`` (all when None).

    The others are either accepted and ignored, unlisted (``refuse=False``: a script
    may pass one set of configuration flags to every command), or refused naming the
    flag (``--once`` after a command that is not ``run``).
    """

    def __init__(self, group: Any, takes: frozenset[str] | None, refuse: bool = False) -> None:
        self.group = group
        self.takes = takes
        self.refuse = refuse

    def add_argument(self, *names: str, **kwargs: Any) -> None:
        if self.takes is None or names[0] in self.takes:
            self.group.add_argument(*names, **kwargs)
        elif not self.refuse:
            self.group.add_argument(*names, **{**kwargs, "help": argparse.SUPPRESS})
        else:  # consume a value too, so that a positional (audit's ACTION) does not take it
            nargs = 0 if kwargs.get("action") in ("store_true", "store_false") else None
            self.group.add_argument(*names, action=_Refused, nargs=nargs,
                                    default=argparse.SUPPRESS, help=argparse.SUPPRESS)


def _once_flags(p: argparse.ArgumentParser, default: Any,
                takes: frozenset[str] | None = None) -> None:
    """``--once`` and ``--force``: before any command, or after ``run`` only."""
    g = _Only(p, takes, refuse=True)
    g.add_argument("--once", action="store_true", default=default or False,
                   help="sync once and exit")
    g.add_argument("--force", action="store_true", default=default or False,
                   help="with --once: deploy even a commit marked bad or rejected")
    g.add_argument("--window-override", action="store_true", default=default or False,
                   help="with --once: deploy inside a closed sync window (a freeze still holds)")


def _global_flags(p: argparse.ArgumentParser, default: Any,
                  takes: frozenset[str] | None = None) -> None:
    """The configuration flags, before the command or after its name (listed: those it uses).

    On the subcommands they default to ``argparse.SUPPRESS``: a flag left out there
    then sets nothing, so it cannot overwrite the same flag given before the command.
    """
    g = _Only(p.add_argument_group("configuration (flags > SKILLSYNC_* env > TOML file)"), takes)
    g.add_argument("--config", default=default, help="TOML config file (SKILLSYNC_CONFIG)")
    g.add_argument("--repo", default=default,
                   help="git remote URL or local path (SKILLSYNC_REPO)")
    g.add_argument("--ref", default=default,
                   help="branch, tag, full commit SHA or semver:RANGE over tags "
                   "(SKILLSYNC_REF, default main)")
    g.add_argument("--state-dir", default=default,
                   help="state directory (SKILLSYNC_STATE_DIR, default /data/skillsync)")
    g.add_argument("--skills-path", default=default,
                   help="folder in the repo holding skill folders (SKILLSYNC_SKILLS_PATH)")
    g.add_argument("--interval", default=default,  # parsed by config: one-line errors
                   help="poll interval in seconds (SKILLSYNC_INTERVAL)")
    g.add_argument("--http-bind", default=default,
                   help="host:port of the status endpoint (SKILLSYNC_HTTP_BIND)")
    g.add_argument("--on-invalid", choices=("skip", "reject"), default=default,
                   help="validation policy")
    g.add_argument("--strict", action="store_true", default=default,
                   help="warnings become errors")
    g.add_argument("--log-level", default=default, help="debug, info, warning, error")


_JSON_HELP = "print JSON (one document on stdout; logs go to stderr)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="skillsyncd",
        description="Keep an AI gateway's skills in step with a git repository. "
        "Global flags go before or after COMMAND; after it wins.",
        epilog="Exit codes: 0 deployed or nothing to do, 1 sync failed, 2 usage or config "
        "error, 3 lock busy, 4 validation rejected, 5 frozen.",
    )
    parser.add_argument("--version", action="version", version=f"skillsyncd {__version__}")
    _once_flags(parser, None)
    _global_flags(parser, None)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=_DESCRIPTIONS[name])
        _once_flags(p, argparse.SUPPRESS, None if name == "run" else frozenset())
        _global_flags(p, argparse.SUPPRESS, _TAKES.get(name))
        return p

    command("run", "run the daemon (the default)")
    p = command("status", "what is deployed, and how the last sync went")
    p.add_argument("--json", action="store_true", help=_JSON_HELP)
    p.add_argument("--manifest", action="store_true", help="print the live release's manifest "
                   "with the freeze and the commits marked bad, for `plan --against` in CI")
    p = command("releases", "list releases on disk")
    p.add_argument("--json", action="store_true", help=_JSON_HELP)
    p = command("rollback", "flip back to an earlier release")
    p.add_argument("--to", metavar="RELEASE", help="release id (default: the previous one)")
    p = command("validate", "validate a skills working tree (for the repo's CI)")
    p.add_argument("path", help="working tree of the skills repository")
    p.add_argument("--format", choices=("text", "json", "github"), default="text",
                   help="text (default), json, or github (workflow annotations)")
    _gateway_flags(p)
    p = command("audit", "deployment history from the journal")
    p.add_argument("action", nargs="?", choices=("push",), help="push: ship the backlog to Neo4j now")
    p.add_argument("--since", help="ISO date or time (UTC unless it says), a duration back "
                   "from now (2h, 3d), today or yesterday")
    p.add_argument("--skill", help="only events touching this skill")
    p.add_argument("--json", action="store_true", help=_JSON_HELP)
    p.add_argument("--all", action="store_true", help="include no-change polls and sync start/end")
    p = command("fleet", "which replica runs which commit (from Neo4j)")
    p.add_argument("--json", action="store_true", help=_JSON_HELP)
    _freeze_commands(command)
    _plan_command(command)
    return parser


def _gateway_flags(p: argparse.ArgumentParser) -> None:
    """``--gateway-*`` of ``validate`` and ``plan``: the gateway's context for the usage.* rules."""
    g = p.add_argument_group("the gateway, for the usage.* rules (default: the repository's skills alone)")
    for flag, what in (("path", "its PATH, for requires.bins"), ("config", "its openclaw.json"),
                       ("env", "comma-separated variables set for it, for requires.env"),
                       ("bundled-dir", "its bundled skills folder"), ("platform", "linux, darwin or win32")):
        env = "SKILLSYNC_GATEWAY_" + flag.upper().replace("-", "_")
        g.add_argument(f"--gateway-{flag}", help=f"{what} ({env})")


def _plan_command(command: Callable[[str, str], argparse.ArgumentParser]) -> None:
    """``plan`` (sync/preview_run.py): what deploying a ref would do, read only."""
    p = command("plan", "preview what deploying a ref would do to the live release")
    p.add_argument("--against", metavar="MANIFEST", help="compare with this manifest (exported "
                   "by `status --manifest`) instead of the state dir's live release")
    p.add_argument("--format", choices=("text", "json", "markdown"), default="text",
                   help="text (default), json, or markdown (a pull-request comment)")
    _gateway_flags(p)


def _freeze_commands(command: Callable[[str, str], argparse.ArgumentParser]) -> None:
    """``freeze`` and ``unfreeze`` (sync/freeze.py): syncs go on, nothing goes live."""
    p = command("freeze", "stop deployments: syncs still fetch and validate, nothing goes live")
    p.add_argument("--reason", metavar="TEXT", help="why (shown in status, the dashboard, alerts)")
    p.add_argument("--until", metavar="TIME", help="end by itself then: an ISO date-time (UTC "
                   "unless it says) or a duration from now (30m, 2h, 1d)")
    command("unfreeze", "lift the freeze; the next sync deploys what waits")


_FLAG_FIELDS = ("repo", "ref", "state_dir", "skills_path", "interval", "http_bind",
                "on_invalid", "strict", "log_level", "gateway_path", "gateway_config", "gateway_env",
                "gateway_bundled_dir", "gateway_platform")


def config_from_args(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> Config:
    """The Config for parsed arguments (``env`` defaults to the process environment)."""
    from skillsyncd.config import load_config

    flags = {name: getattr(args, name, None) for name in _FLAG_FIELDS}
    return load_config(flags=flags, env=env, config_file=getattr(args, "config", None))


def _log_env_notes() -> None:
    """Warn about environment variables that look wrong; names only, never values."""
    import os

    import structlog

    from skillsyncd.env_notes import env_notes

    log = structlog.get_logger(__name__)
    for note in env_notes(os.environ):
        log.warning(note.event, **note.fields())


def _daemon_run(args: argparse.Namespace) -> bool:
    return args.command in (None, "run") and not args.once


def main(argv: Sequence[str] | None = None) -> int:
    # First of all: record SIGTERM/SIGINT/SIGHUP instead of dying of them (stopping.py).
    installed = PENDING.install()
    args = build_parser().parse_args(argv)
    if installed and not _daemon_run(args):
        PENDING.uninstall()  # other commands keep Python's own SIGINT and SIGTERM
    reports = False
    cfg: Config | None = None
    try:
        PENDING.check("arguments parsed")
        from skillsyncd.log import configure

        cfg = config_from_args(args)
        command = args.command or "run"
        # Commands whose stdout is a document (status --json | jq) log to stderr.
        reports = command in ("status", "releases", "audit", "fleet", "validate", "plan") \
            and not args.once
        configure(cfg.log_level, stderr=reports)
        _log_env_notes()
        if args.once:
            if args.command not in (None, "run"):
                raise ConfigError("--once runs a single sync; it takes no other command")
            cfg.require_loadable_depth()
            return cmd_once(cfg, force=args.force, window_override=args.window_override)
        if args.force or args.window_override:
            raise ConfigError("--force and --window-override only go with --once")
        handler = {
            "run": cmd_run,
            "status": cmd_status,
            "releases": cmd_releases,
            "rollback": cmd_rollback,
            "validate": cmd_validate,
            "audit": cmd_audit,
            "fleet": cmd_fleet,
            "freeze": cmd_freeze,
            "unfreeze": cmd_unfreeze,
            "plan": cmd_plan,
        }[command]
        return int(handler(cfg, args))
    except StopRequested as stop:
        _stopped_early(stop)
        return EXIT_OK
    except SkillsyncError as exc:
        print(f"skillsyncd: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return EXIT_SYNC_FAILED
    finally:
        if reports and cfg is not None:  # in-process callers (tests, embedders) get stdout back
            from skillsyncd.log import configure

            configure(cfg.log_level)


def _stopped_early(stop: StopRequested) -> None:
    """One log line for a stop that came before the daemon was up."""
    import structlog

    from skillsyncd.log import configure

    if not structlog.is_configured():
        configure()
    structlog.get_logger(__name__).info(
        "stopped", during_startup=stop.step, signal=stop.signum, abandoned=False, crashed=False)


# --- commands ----------------------------------------------------------------------


def make_syncer(cfg: Config) -> Any:
    """The Syncer with the journal, publisher and read-back check wired in."""
    from skillsyncd.sync.assembly import build_syncer

    return build_syncer(cfg)


def cmd_once(cfg: Config, force: bool = False, window_override: bool = False) -> int:
    syncer = make_syncer(cfg)
    try:
        outcome = syncer.sync(trigger="manual", force=force, window_override=window_override)
    finally:
        _ship_audit(cfg)  # failures are audit events too
    line = f"{outcome.status}: commit {(outcome.commit or '-')[:12]} release {outcome.release or '-'}"
    if outcome.status is Status.DEPLOYED:
        p, held = outcome.plan, outcome.held_back
        went_live = (sum(1 for n in p.added if n not in held), sum(1 for n in p.changed if n not in held))
        line += (f" ({outcome.skills_live} skills live: +{went_live[0]} ~{went_live[1]} -{len(p.removed)}"
                 f" ={len(p.unchanged)}" + (f"; {len(held)} held back" if held else "") + ")")
    elif outcome.status is Status.FROZEN and not outcome.plan.is_empty:
        p = outcome.plan
        line += (f" (waiting, not live: +{len(p.added)} ~{len(p.changed)} -{len(p.removed)}"
                 + (f"; {len(outcome.held_back)} held back" if outcome.held_back else "") + ")")
    print(line, file=sys.stderr)
    if outcome.status is Status.DEPLOYED and not outcome.skills_live:
        print(f"  warning: nothing is live: no skill found under {cfg.skills_path or 'the repository root'}"
              f" (depth {cfg.skill_depth}); check SKILLSYNC_SKILLS_PATH and SKILLSYNC_SKILL_DEPTH",
              file=sys.stderr)
    for name, reasons in outcome.held_back.items():
        print(f"  held back {name}:", file=sys.stderr)
        for r in reasons:
            print(f"    {r}", file=sys.stderr)
    if outcome.reason:
        print(f"  reason: {outcome.reason}", file=sys.stderr)
    if outcome.status is Status.ROLLED_BACK:
        return EXIT_SYNC_FAILED
    if outcome.status is Status.REJECTED:  # refused again: the same outcome, the same exit code
        return EXIT_REJECTED
    if outcome.status is Status.FROZEN:  # --force lifts neither a freeze nor a closed window
        return EXIT_FROZEN
    if outcome.status is Status.DEPLOYED:
        _run_hooks(cfg, outcome, Status.DEPLOYED)
    return EXIT_OK


AUDIT_SHIP_WAIT = 10.0  # seconds a one-shot command waits for Neo4j before leaving it to later


def _ship_audit(cfg: Config, wait: float = AUDIT_SHIP_WAIT) -> None:
    """Best effort: ship the journal's backlog to Neo4j, never longer than ``wait``.

    Whatever does not make it stays in the journal; the daemon or ``skillsyncd audit
    push`` ships it later. A one-shot's exit code never depends on Neo4j.
    """
    if not cfg.neo4j_uri:
        return
    import threading

    from skillsyncd.audit.commands import open_journal
    from skillsyncd.audit.neo4j import Neo4jSink

    sink = Neo4jSink(cfg, open_journal(cfg))
    result: dict[str, Any] = {}

    def ship() -> None:
        try:
            result["shipped"] = sink.ship()
        except Exception as exc:  # reported below, never raised
            result["error"] = str(exc)
        finally:
            sink.close()

    worker = threading.Thread(target=ship, name="skillsyncd-audit-once", daemon=True)
    worker.start()
    worker.join(wait)
    if "shipped" not in result:
        why = result.get("error") or f"Neo4j did not answer within {wait:g}s"
        print(f"  audit: not replicated yet ({why}); the events wait in the journal for the "
              "daemon or 'skillsyncd audit push'", file=sys.stderr)


def _run_hooks(cfg: Config, outcome: Any, event: str) -> None:
    """The same post-publish hooks the daemon runs, waited for (a one-shot has no loop)."""
    if not (cfg.hook_command or cfg.hook_url) or not outcome.release:
        return
    from skillsyncd.daemon.hooks import Deployment, deliver_now

    ok = deliver_now(cfg.hook_command, cfg.hook_url, Deployment(
        commit=outcome.commit or "", release=outcome.release,
        previous_commit=outcome.previous_commit, previous_release=outcome.previous_release,
        trigger="manual", state_dir=str(cfg.state_dir), event=event,
    ))
    if not ok:
        print("  warning: a post-publish hook failed (see the log); the release stays live",
              file=sys.stderr)


def cmd_run(cfg: Config, args: argparse.Namespace) -> int:
    cfg.require_repo()
    cfg.require_loadable_depth()
    PENDING.check("configured")
    from skillsyncd.daemon.service import run

    return run(cfg)


def cmd_status(cfg: Config, args: argparse.Namespace) -> int:
    import json

    from skillsyncd.status import status_dict, status_lines

    if args.manifest:
        from skillsyncd.sync.preview_run import cmd_export_manifest

        return cmd_export_manifest(cfg)
    info = status_dict(cfg)
    if args.json:
        print(json.dumps(info, indent=2))
        return EXIT_OK
    print("\n".join(status_lines(info)))
    return EXIT_OK


def cmd_releases(cfg: Config, args: argparse.Namespace) -> int:
    import json

    from skillsyncd.release.releases import Releases

    releases = Releases(cfg.state_dir)
    current = releases.current()
    rows = []
    for rid in releases.complete():
        m = releases.manifest(rid)
        rows.append({"release": rid, "commit": m.commit, "created": m.created,
                     "skills": len(m.live),
                     "current": rid == current})
    if args.json:
        print(json.dumps(rows, indent=2))
    elif not rows:
        print("no releases")
    for row in rows if not args.json else []:
        mark = "*" if row["current"] else " "
        print(f"{mark} {row['release']}  {row['skills']:>4} skills  {row['created']}")
    return EXIT_OK


def cmd_rollback(cfg: Config, args: argparse.Namespace) -> int:
    from skillsyncd.errors import ReleaseError
    from skillsyncd.release.releases import Releases

    if Releases(cfg.state_dir).current() is None:  # asked before the lock, which would create the dir
        raise ReleaseError(f"nothing to roll back in {cfg.state_dir}: no release is live there "
                           "(check --state-dir / SKILLSYNC_STATE_DIR)")
    outcome = make_syncer(cfg).rollback(to=args.to)
    print(f"rolled back to {outcome.release} (commit {(outcome.commit or '')[:12]}); "
          f"commit {(outcome.previous_commit or '-')[:12]} will not be redeployed automatically",
          file=sys.stderr)
    _ship_audit(cfg)
    _run_hooks(cfg, outcome, Status.MANUAL_ROLLBACK)
    return EXIT_OK


def cmd_validate(cfg: Config, args: argparse.Namespace) -> int:
    from pathlib import Path

    from skillsyncd.validation.report import exit_code, render
    from skillsyncd.validation.worktree import validate_path

    path = Path(args.path)
    if not path.is_dir():
        raise ConfigError(f"{path} is not a directory")
    report = validate_path(path, cfg)
    print(render(report, args.format))
    return int(exit_code(report))


def cmd_audit(cfg: Config, args: argparse.Namespace) -> int:
    from skillsyncd.audit.commands import cmd_audit as audit
    from skillsyncd.audit.commands import cmd_audit_push

    if args.action == "push":
        return int(cmd_audit_push(cfg))
    return int(audit(cfg, args))


def cmd_fleet(cfg: Config, args: argparse.Namespace) -> int:
    from skillsyncd.audit.commands import cmd_fleet as fleet

    return int(fleet(cfg, as_json=args.json))


def cmd_freeze(cfg: Config, args: argparse.Namespace) -> int:
    from skillsyncd.audit.commands import open_journal
    from skillsyncd.sync.freeze import parse_until, set_freeze
    from skillsyncd.sync.user_guard import require_owner

    until = parse_until(args.until) if args.until else None
    require_owner(cfg.state_dir)  # a root freeze.lock would lock the daemon out
    freeze = set_freeze(cfg, open_journal(cfg).append, reason=args.reason, until=until, by="cli")
    print(f"{freeze.describe()}; syncs go on and show what waits, nothing goes live "
          "('skillsyncd unfreeze' lifts it)", file=sys.stderr)
    _ship_audit(cfg)
    return EXIT_OK


def cmd_unfreeze(cfg: Config, args: argparse.Namespace) -> int:
    from skillsyncd.audit.commands import open_journal
    from skillsyncd.sync.freeze import end_freeze
    from skillsyncd.sync.user_guard import require_owner

    require_owner(cfg.state_dir)
    lifted = end_freeze(cfg, open_journal(cfg).append, by="cli")
    if lifted is None:
        print(f"not frozen: nothing to lift in {cfg.state_dir}", file=sys.stderr)
        return EXIT_OK
    print("unfrozen: the next sync deploys what waits (a running daemon: at its next poll; "
          "POST /unfreeze syncs at once)", file=sys.stderr)
    _ship_audit(cfg)
    return EXIT_OK


def cmd_plan(cfg: Config, args: argparse.Namespace) -> int:
    from skillsyncd.sync.preview_run import cmd_plan as plan

    return plan(cfg, args.against, args.format)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

__all__ = ["COMMANDS", "EXIT_USAGE", "main"]
