"""Configuration: flags, then SKILLSYNC_* environment variables, then a TOML file.

Every setting has one name (the dataclass field). Its environment variable is
``SKILLSYNC_<NAME>``, its TOML key is ``<name>`` at the top level, and a few
settings also accept the seed's names (GITHUB_TOKEN, POLLING_INTERVAL_MIN, ...).
Secrets are never stored as plain values: a :class:`Secret` remembers where the
value comes from and re-reads ``*_FILE`` paths on every use so tokens can rotate.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import socket
import sys
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from skillsyncd.errors import ConfigError
from skillsyncd.source.channels import parse_channel
from skillsyncd.sync.windows import SyncWindow, parse_windows

# Paths containing one of these components are ignored by the gateway's watcher
#: a state or publish dir under them would never hot-reload.
WATCHER_IGNORED_NAMES = frozenset(
    {".git", "node_modules", "dist", "build", ".cache", "venv", ".venv", "__pycache__"}
)


# How far down OpenClaw 2026.9 looks for grouped skills in a folder it reads
# (dist/skill-root-discovery: MAX_CONFIGURED_ROOT_GROUPED_SKILL_SCAN_DEPTH and
# MAX_GROUPED_SKILL_SCAN_DEPTH): 2 folder levels below a skills.load.extraDirs root,
# 6 when that folder is named "skills", as its managed and workspace folders are.
GATEWAY_EXTRA_DIR_DEPTH = 2
GATEWAY_SKILLS_DIR_DEPTH = 6


@dataclass(frozen=True)
class Secret:
    """A secret value or a file holding it; read on demand, never printed."""

    value: str | None = None
    file: Path | None = None

    def get(self) -> str | None:
        if self.file is not None:
            try:
                return self.file.read_text(encoding="utf-8").strip() or None
            except OSError as exc:
                raise ConfigError(
                    f"cannot read secret file {self.file}: {exc.strerror}; "
                    "check the *_FILE path and its permissions"
                ) from exc
        return self.value or None

    def __bool__(self) -> bool:
        return self.value is not None or self.file is not None

    def __repr__(self) -> str:
        where = f"file={str(self.file)!r}" if self.file else "value=<redacted>"
        return f"Secret({where})" if self else "Secret(None)"

    __str__ = __repr__


NO_SECRET = Secret()


@dataclass(frozen=True)
class Config:
    # source
    repo: str | None = None
    ref: str = "main"
    skills_path: str = ""
    token: Secret = NO_SECRET
    username: str = "x-access-token"
    # a GitHub App instead of the token (source/github_app.py): all three, the key as a secret
    github_app_id: str | None = None
    github_app_installation_id: str | None = None
    github_app_private_key: Secret = NO_SECRET
    ssh_command: str | None = None
    network_timeout: float = 30.0
    max_packs: int = 20
    # state and releases
    state_dir: Path = Path("/data/skillsync")
    keep_releases: int = 5
    lock_timeout: float = 30.0
    # validation
    on_invalid: str = "skip"  # skip | reject
    required_fields: tuple[str, ...] = ("description",)
    strict: bool = False
    severity: Mapping[str, str] = field(default_factory=dict)
    max_skill_md_bytes: int = 256_000
    max_file_bytes: int = 16 * 1024 * 1024
    max_skill_bytes: int = 64 * 1024 * 1024
    max_skill_files: int = 1_000
    max_release_bytes: int = 2 * 1024 * 1024 * 1024
    # discovery, as the gateway does it (docs/validation.md)
    skill_depth: int = 2  # folder levels below the skills root; the gateway's managed folder allows 6
    gateway_max_candidates: int = 300  # OpenClaw skills.limits.maxCandidatesPerRoot
    gateway_max_skills: int = 200  # OpenClaw skills.limits.maxSkillsLoadedPerSource
    # the gateway as the use rules see it (validation/usage/context.py); None: what its process sees
    gateway_path: str | None = None  # its PATH (default: this process's, inherited from supervisord)
    gateway_config: Path | None = None  # its openclaw.json (default: $OPENCLAW_STATE_DIR/openclaw.json)
    gateway_env: tuple[str, ...] | None = None  # variables set for it (default: this process's)
    gateway_bundled_dir: Path | None = None  # its bundled skills (default: found from its package)
    gateway_platform: str = sys.platform  # process.platform: linux, darwin, win32
    allow_mass_removal: bool = False  # a commit may remove more than half of the live skills
    ignore: tuple[str, ...] = ()  # gitignore patterns, on top of the defaults and .skillsyncignore
    # trust (skillsyncd.source.signatures): which commit signatures may deploy, and the keys trusted
    verify: str = "none"  # none | ssh | gpg | any
    allowed_signers: Secret = NO_SECRET  # git's allowed_signers format (or ..._FILE)
    gpg_keys: Secret = NO_SECRET  # armored OpenPGP public keys (or ..._FILE)
    # publish
    publish_mode: str = "link"  # link | mirror
    publish_dir: Path | None = None
    publish_marker: bool = True
    drift: str = "repair"  # repair | report | off: hand edits in the published folder
    # daemon
    interval: float = 60.0
    jitter: float = 0.1
    backoff_max: float = 900.0
    http_bind: str = "127.0.0.1:18790"
    readiness_staleness: float | None = None  # default: 5 intervals
    webhook_secret: Secret = NO_SECRET
    webhook_max_bytes: int = 1024 * 1024
    # A client gets this long for its request headers and, separately, for a body;
    # an idle keep-alive connection is closed after it too (daemon/http.py).
    http_timeout: float = 5.0
    http_max_connections: int = 64
    health_url: str | None = None
    health_command: str | None = None
    health_timeout: float = 5.0
    health_retries: int = 3
    # seconds to wait before a flip for a health URL that is down or starting
    health_start_wait: float = 60.0
    # the post-deploy confirmation (sync/confirm.py): ask the gateway which skills its agent can use
    gateway_url: str | None = None  # its WebSocket, e.g. ws://127.0.0.1:18789 (set by supervisord.conf)
    gateway_token: Secret = NO_SECRET  # the gateway's own OPENCLAW_GATEWAY_TOKEN (or ..._FILE)
    gateway_confirm: str = "report"  # report | rollback | off: a skill this commit made unusable
    gateway_settle: float = 15.0  # seconds to wait for the gateway to load a release before judging
    hook_command: str | None = None
    hook_url: str | None = None
    # a veto before the flip (sync/veto.py): run on the staged release; non-zero refuses the commit
    pre_flip_command: str | None = None
    pre_flip_timeout: float = 60.0
    # when deployments may go live (sync/windows.py): JSON array, or [[sync_windows]] in TOML
    sync_windows: tuple[SyncWindow, ...] = ()
    # telling people: alerts, commit statuses, the HTTP side beyond loopback
    notify: Secret = NO_SECRET  # Apprise URLs, space or newline separated (SKILLSYNC_NOTIFY[_FILE])
    notify_failing_after: int = 3  # failed syncs in a row before an alert
    notify_audit_lag: int = 100  # journal events not yet in Neo4j before an alert
    commit_status: bool = False  # post a GitHub commit status per decision (needs GITHUB_TOKEN)
    commit_status_url: str | None = None  # the status's target_url (e.g. the public dashboard)
    github_api_url: str = "https://api.github.com"
    github_repository: str | None = None  # OWNER/REPO; default: from repo when it is on github.com
    http_token: Secret = NO_SECRET  # bearer token for everything but the webhook off loopback
    # Below supervisord's default stopwaitsecs (10 s): exit before it sends SIGKILL.
    stop_grace: float = 8.0
    # audit
    replica_id: str = field(default_factory=socket.gethostname)
    neo4j_uri: str | None = None
    neo4j_user: str = "neo4j"
    neo4j_password: Secret = NO_SECRET
    neo4j_database: str | None = None
    # logging
    log_level: str = "info"

    @property
    def mirror_dir(self) -> Path:
        return self.state_dir / "mirror.git"

    @property
    def releases_dir(self) -> Path:
        return self.state_dir / "releases"

    @property
    def current_link(self) -> Path:
        return self.state_dir / "current"

    @property
    def state_file(self) -> Path:
        return self.state_dir / "state.json"

    @property
    def journal_file(self) -> Path:
        return self.state_dir / "journal.jsonl"

    @property
    def lock_file(self) -> Path:
        return self.state_dir / "skillsyncd.lock"

    @property
    def lock_owner_file(self) -> Path:
        """The pid of the lock's holder, rewritten each time the lock is taken."""
        return self.state_dir / "skillsyncd.lock.owner"

    def release_settings(self) -> str:
        """A fingerprint of every setting that changes what a release holds or what is refused."""
        shaping = {
            "skills_path": self.skills_path.strip("/"), "on_invalid": self.on_invalid,
            "required_fields": list(self.required_fields), "strict": self.strict,
            "severity": sorted((str(k), str(v)) for k, v in self.severity.items()),
            "limits": [self.max_skill_md_bytes, self.max_file_bytes, self.max_skill_bytes,
                       self.max_skill_files, self.max_release_bytes],
            "skill_depth": self.skill_depth, "allow_mass_removal": self.allow_mass_removal,
            "gateway": [self.gateway_max_candidates, self.gateway_max_skills],
            "publish_mode": self.publish_mode, "ignore": list(self.ignore), "verify": self.verify,
        }
        return hashlib.sha256(json.dumps(shaping, sort_keys=True).encode()).hexdigest()[:16]

    def gateway_depth(self) -> tuple[int, Path]:
        """The folder levels the gateway searches in the folder it reads, and that folder.

        Link mode: ``current``, named in ``extraDirs`` (2). Mirror mode: the publish dir,
        6 levels when it is named ``skills`` (the managed folder, a workspace's), else 2.
        """
        if self.publish_mode == "mirror" and self.publish_dir is not None:
            named = Path(self.publish_dir).name == "skills"
            return (GATEWAY_SKILLS_DIR_DEPTH if named else GATEWAY_EXTRA_DIR_DEPTH), self.publish_dir
        return GATEWAY_EXTRA_DIR_DEPTH, self.current_link

    def require_loadable_depth(self) -> None:
        """Refuse to deploy with a skill_depth the gateway does not search (the skills below
        its limit would go live and never load). Commands that only read or validate skip it."""
        levels, root = self.gateway_depth()
        if self.skill_depth <= levels:
            return
        fix = (f"set SKILLSYNC_SKILL_DEPTH={levels} (deeper skills are then named as "
               "layout.too-deep)")
        if levels < GATEWAY_SKILLS_DIR_DEPTH:
            how = "" if self.publish_mode == "mirror" else "with SKILLSYNC_PUBLISH_MODE=mirror "
            fix += (f", or publish {how}into a folder named skills (the gateway's managed folder, "
                    f"e.g. /data/.openclaw/skills), searched {GATEWAY_SKILLS_DIR_DEPTH} levels down")
        raise ConfigError(
            f"skill_depth {self.skill_depth} is deeper than the gateway loads in {self.publish_mode} "
            f"mode: it searches {root} {levels} folder levels down, so skills below that would go "
            f"live and never load; {fix}")

    def require_repo(self) -> str:
        if not self.repo:
            raise ConfigError(
                "no repository configured: pass --repo URL or set SKILLSYNC_REPO "
                "(e.g. SKILLSYNC_REPO=https://github.com/OWNER/skills.git)"
            )
        return self.repo


# --- loading -----------------------------------------------------------------

# Read on demand and from *_FILE paths; public keys are not secret, but they rotate the same way.
SECRET_FIELDS = {"token", "webhook_secret", "neo4j_password", "notify", "http_token", "allowed_signers",
                  "gpg_keys", "gateway_token", "github_app_private_key"}

# Extra environment names per field, in priority order after SKILLSYNC_<NAME>.
ENV_ALIASES: dict[str, tuple[str, ...]] = {
    "token": ("GITHUB_TOKEN",),
    "webhook_secret": ("GITHUB_WEBHOOK_SECRET",),
    "neo4j_uri": ("NEO4J_URI",),
    "neo4j_user": ("NEO4J_USER", "NEO4J_USERNAME"),
    "neo4j_password": ("NEO4J_PASSWORD",),
    "neo4j_database": ("NEO4J_DATABASE",),
    "max_skill_md_bytes": ("MAX_SKILL_SIZE_BYTES",),
    "gateway_token": ("OPENCLAW_GATEWAY_TOKEN",),
}


def secret_env_names() -> frozenset[str]:
    """Every environment name a secret setting is read from, ``*_FILE`` forms included
    (what a command skillsyncd runs for someone else must not inherit)."""
    names: set[str] = set()
    for name in SECRET_FIELDS:
        for var in (f"SKILLSYNC_{name.upper()}", *ENV_ALIASES.get(name, ())):
            names |= {var, f"{var}_FILE"}
    return frozenset(names)


def _parse_bool(raw: str) -> bool:
    low = raw.strip().lower()
    if low in {"1", "true", "yes", "on"}:
        return True
    if low in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"expected a boolean (true/false), got {raw!r}")


def _parse_severity(raw: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in filter(None, (p.strip() for p in raw.split(","))):
        rule, sep, level = item.partition("=")
        if not sep:
            raise ValueError(f"expected RULE=LEVEL pairs, got {item!r}")
        out[rule.strip()] = level.strip()
    return out


def _converter(f: dataclasses.Field[Any]) -> Callable[[Any], Any]:
    default = f.default if f.default is not dataclasses.MISSING else None
    if f.name in {"required_fields", "gateway_env"}:
        return lambda v: tuple(
            x.strip() for x in (v.split(",") if isinstance(v, str) else v) if x.strip()
        )
    if f.name == "ignore":  # comma- or newline-separated gitignore patterns
        return lambda v: tuple(
            x.strip() for x in (v.replace("\n", ",").split(",") if isinstance(v, str) else v) if x.strip()
        )
    if f.name == "sync_windows":
        return parse_windows
    if f.name == "severity":
        return lambda v: _parse_severity(v) if isinstance(v, str) else dict(v)
    if f.name in {"state_dir", "publish_dir", "gateway_config", "gateway_bundled_dir"}:
        return lambda v: Path(v).expanduser() if v not in (None, "") else None
    if isinstance(default, bool):
        return lambda v: v if isinstance(v, bool) else _parse_bool(str(v))
    if isinstance(default, int):
        return int
    if isinstance(default, float) or f.name == "readiness_staleness":
        return float
    return lambda v: None if v is None else str(v)


def _secret_from(env: Mapping[str, str], names: tuple[str, ...]) -> Secret | None:
    for name in names:
        if env.get(f"{name}_FILE"):
            return Secret(file=Path(env[f"{name}_FILE"]))
        if env.get(name):
            return Secret(value=env[name])
    return None


def _from_env(env: Mapping[str, str]) -> dict[str, Any]:
    raw: dict[str, Any] = {}
    for f in dataclasses.fields(Config):
        names = (f"SKILLSYNC_{f.name.upper()}", *ENV_ALIASES.get(f.name, ()))
        if f.name in SECRET_FIELDS:
            secret = _secret_from(env, names)
            if secret is not None:
                raw[f.name] = secret
            continue
        for name in names:
            if env.get(name) not in (None, ""):
                raw[f.name] = env[name]
                break
    if "interval" not in raw and env.get("POLLING_INTERVAL_MIN"):
        try:
            raw["interval"] = float(env["POLLING_INTERVAL_MIN"]) * 60
        except ValueError as exc:
            raise ConfigError(
                f"POLLING_INTERVAL_MIN={env['POLLING_INTERVAL_MIN']!r} is not a number"
            ) from exc
    return raw


def _as_number(text: str, scale: float = 1) -> str:
    """``text`` as a canonical number (times ``scale``), or unchanged if it is none."""
    try:
        return repr(float(text) * scale)
    except ValueError:
        return text  # load_config reports a bad value itself


def env_candidates(env: Mapping[str, str], field_name: str) -> list[tuple[str, str]]:
    """(variable, value) for each set variable naming ``field_name``, highest priority first.

    A secret's ``*_FILE`` variable counts as its own candidate, ahead of the plain one.
    """
    names = (f"SKILLSYNC_{field_name.upper()}", *ENV_ALIASES.get(field_name, ()))
    out: list[tuple[str, str]] = []
    for name in names:
        variants = (f"{name}_FILE", name) if field_name in SECRET_FIELDS else (name,)
        for var in variants:
            if env.get(var) not in (None, ""):
                out.append((var, ("file:" if var.endswith("_FILE") else "") + env[var]))
    if field_name == "interval" and env.get("POLLING_INTERVAL_MIN"):
        # Compare seconds with seconds: SKILLSYNC_INTERVAL=120 and POLLING_INTERVAL_MIN=2 agree.
        out = [(var, _as_number(value)) for var, value in out]
        out.append(("POLLING_INTERVAL_MIN", _as_number(env["POLLING_INTERVAL_MIN"], 60)))
    return out


def _from_toml(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    known = {f.name for f in dataclasses.fields(Config)}
    unknown = sorted(set(data) - known - {f"{s}_file" for s in SECRET_FIELDS})
    if unknown:
        raise ConfigError(f"unknown setting(s) in {path}: {', '.join(unknown)}")
    raw: dict[str, Any] = {}
    for key, value in data.items():
        if key.endswith("_file") and key[: -len("_file")] in SECRET_FIELDS:
            raw[key[: -len("_file")]] = Secret(file=Path(value))
        elif key in SECRET_FIELDS:
            raw[key] = Secret(value=str(value))
        else:
            raw[key] = value
    return raw


def _origins(flags: Mapping[str, Any], env: Mapping[str, str], toml: Mapping[str, Any],
             path: str | Path | None) -> dict[str, str]:
    """Setting -> where its value came from ("--interval", "SKILLSYNC_INTERVAL", a file)."""
    out = {name: f"{name} in {path}" for name in toml}
    for f in dataclasses.fields(Config):
        found = env_candidates(env, f.name)
        if found:
            out[f.name] = found[0][0]
    out.update({name: "--" + name.replace("_", "-") for name in flags})
    return out


def _bad_value(name: str, raw: Any, exc: Exception, origin: str) -> ConfigError:
    """One line: the setting, the value, what it should be, and where the value was set."""
    default = next(f.default for f in dataclasses.fields(Config) if f.name == name)
    if isinstance(default, bool):
        why = "is not a boolean (true or false)"
    elif isinstance(default, int):
        why = "is not a whole number"
    elif isinstance(default, float) or name == "readiness_staleness":
        why = "is not a number"
    else:
        why = f"is not valid: {exc}"
    return ConfigError(f"{name} {str(raw)!r} {why} (set by {origin})")


def load_config(
    flags: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    config_file: str | Path | None = None,
) -> Config:
    """Merge defaults < TOML < environment < flags into a checked Config."""
    env = os.environ if env is None else env
    flags = {k: v for k, v in (flags or {}).items() if v is not None}
    path = config_file or env.get("SKILLSYNC_CONFIG")
    toml = _from_toml(Path(path)) if path else {}
    merged: dict[str, Any] = {**toml, **_from_env(env), **flags}
    origins = _origins(flags, env, toml, path)
    fields = {f.name: f for f in dataclasses.fields(Config)}
    values: dict[str, Any] = {}
    for name, raw in merged.items():
        f = fields.get(name)
        if f is None:
            raise ConfigError(f"unknown setting {name!r}")
        if name in SECRET_FIELDS:
            values[name] = raw if isinstance(raw, Secret) else Secret(value=str(raw))
            continue
        try:
            values[name] = _converter(f)(raw)
        except (TypeError, ValueError) as exc:
            raise _bad_value(name, raw, exc, origins.get(name, "?")) from exc
    if values.get("state_dir") is None:
        values.pop("state_dir", None)
    return check(Config(**values), origins)


def check(cfg: Config, origins: Mapping[str, str] | None = None) -> Config:
    """Refuse settings that cannot work, with the fix in the message.

    ``origins`` (setting -> the flag, variable or file that set it) lets a message say
    where the bad value was set; without it, or for a default, it says where it can be.
    """
    def at(name: str) -> str:
        where = (origins or {}).get(name)
        if where:
            return f"set by {where}"
        return f"not from a flag, SKILLSYNC_{name.upper()} or the config file"  # built in code

    parse_channel(cfg.ref)  # a ref semver:RANGE must be a range (source/channels.py)
    if cfg.on_invalid not in {"skip", "reject"}:
        raise ConfigError(f"on_invalid must be 'skip' or 'reject', not {cfg.on_invalid!r} "
                          f"({at('on_invalid')})")
    if cfg.verify not in {"none", "ssh", "gpg", "any"}:
        raise ConfigError(f"verify must be none, ssh, gpg or any, not {cfg.verify!r}")
    if cfg.verify == "ssh" and not cfg.allowed_signers:
        raise ConfigError("verify=ssh needs SKILLSYNC_ALLOWED_SIGNERS (or _FILE): the keys to trust")
    if cfg.verify == "gpg" and not cfg.gpg_keys:
        raise ConfigError("verify=gpg needs SKILLSYNC_GPG_KEYS (or _FILE): the keys to trust")
    if cfg.verify == "any" and not (cfg.allowed_signers or cfg.gpg_keys):
        raise ConfigError("verify=any needs SKILLSYNC_ALLOWED_SIGNERS or SKILLSYNC_GPG_KEYS")
    if cfg.gateway_confirm not in {"report", "rollback", "off"}:
        raise ConfigError(f"gateway_confirm must be 'report', 'rollback' or 'off', "
                          f"not {cfg.gateway_confirm!r}")
    if cfg.drift not in {"repair", "report", "off"}:
        raise ConfigError(f"drift must be 'repair', 'report' or 'off', not {cfg.drift!r} "
                          f"({at('drift')})")
    if not 1 <= cfg.skill_depth <= 6:
        raise ConfigError(f"skill_depth must be 1 to 6 (the gateway looks 6 levels down at most), "
                          f"not {cfg.skill_depth} ({at('skill_depth')})")
    if cfg.publish_mode not in {"link", "mirror"}:
        raise ConfigError(f"publish_mode must be 'link' or 'mirror', not {cfg.publish_mode!r} "
                          f"({at('publish_mode')})")
    if cfg.publish_mode == "mirror" and cfg.publish_dir is None:
        raise ConfigError("publish_mode=mirror needs SKILLSYNC_PUBLISH_DIR (a real directory)")
    if cfg.keep_releases < 2:
        raise ConfigError(f"keep_releases must be at least 2 (the current and one to roll back to), "
                          f"not {cfg.keep_releases} ({at('keep_releases')})")
    bounds = (("interval", cfg.interval, 0.0, False), ("network_timeout", cfg.network_timeout, 0.0, False),
              ("lock_timeout", cfg.lock_timeout, 0.0, True), ("http_timeout", cfg.http_timeout, 0.0, False),
              ("pre_flip_timeout", cfg.pre_flip_timeout, 0.0, False),
              ("http_max_connections", cfg.http_max_connections, 4, True))
    for name, value, low, inclusive in bounds:
        if value < low or (value == low and not inclusive):
            need = f"at least {low:g}" if inclusive else f"greater than {low:g}"
            raise ConfigError(f"{name} must be {need}, not {value:g} ({at(name)})")
    return _checked_paths(cfg)


def _checked_paths(cfg: Config) -> Config:
    """Refuse paths that would clash with skillsyncd's own state or that the gateway's
    watcher ignores; ``cfg`` with its skills_path normalised."""
    if cfg.publish_dir is not None:
        pub, st = Path(os.path.abspath(cfg.publish_dir)), Path(os.path.abspath(cfg.state_dir))
        for inner in (st / "releases", st / "current", st / "mirror.git"):
            if pub in (st, inner) or inner in pub.parents:
                raise ConfigError(
                    f"publish_dir {cfg.publish_dir} would overwrite skillsyncd's own state in "
                    f"{cfg.state_dir}: choose a folder outside releases/, current and mirror.git"
                )
    for label, path in (("state_dir", cfg.state_dir), ("publish_dir", cfg.publish_dir)):
        if path is None:
            continue
        bad = WATCHER_IGNORED_NAMES.intersection(Path(path).parts)
        if bad:
            raise ConfigError(
                f"{label} {path} contains {sorted(bad)[0]!r}, a name the gateway's watcher "
                "ignores: changes there would never hot-reload; choose another path"
            )
    sp = PurePosixPath(cfg.skills_path.strip("/")) if cfg.skills_path.strip("/") else None
    if sp is not None and (sp.is_absolute() or ".." in sp.parts):
        raise ConfigError(f"skills_path must be a relative path inside the repository: {sp}")
    return dataclasses.replace(cfg, skills_path=str(sp) if sp else "")
