"""Odd things about the environment, each worth one warning line at start.

Two names set for one setting (a seed name left behind after moving to SKILLSYNC_
names silently loses), and SKILLSYNC_* variables that are no setting (a typo silently
configures nothing). Names only: a value never reaches a note.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from skillsyncd.config import SECRET_FIELDS, Config, env_candidates

# SKILLSYNC_* names that are not settings of skillsyncd but are set on purpose: read
# by supervisord.conf's shell, given to hooks (daemon/hooks.py), or by the e2e tests.
OTHER_OWN_NAMES = frozenset({
    "SKILLSYNC_CONFIG", "SKILLSYNC_USER", "SKILLSYNC_GATEWAY_COMMAND", "SKILLSYNC_E2E_CACHE",
    "SKILLSYNC_EVENT", "SKILLSYNC_COMMIT", "SKILLSYNC_RELEASE", "SKILLSYNC_PREVIOUS_COMMIT",
    "SKILLSYNC_PREVIOUS_RELEASE", "SKILLSYNC_TRIGGER", "SKILLSYNC_RELEASE_DIR",
    "SKILLSYNC_RELEASE_PATH",
    # the container install's (Dockerfile.patch, supervisord.conf, apply-dockerfile-patch.sh)
    "SKILLSYNC_GATEWAY_USER", "SKILLSYNC_GATEWAY_FATAL_FILE", "SKILLSYNC_INSTALL_PYTHON",
})


@dataclass(frozen=True)
class EnvNote:
    """Something odd about the environment, worth one warning line. Names only, no values."""

    event: str  # env_conflict | env_unknown
    variable: str
    message: str
    ignored: tuple[str, ...] = ()
    suggestion: str | None = None

    def fields(self) -> dict[str, Any]:
        out: dict[str, Any] = {"variable": self.variable, "message": self.message}
        if self.ignored:
            out["ignored"] = list(self.ignored)
        if self.suggestion:
            out["did_you_mean"] = self.suggestion
        return out


def known_env_names() -> frozenset[str]:
    """Every SKILLSYNC_* variable skillsyncd or its container reads."""
    names = {f"SKILLSYNC_{f.name.upper()}" for f in dataclasses.fields(Config)}
    names |= {f"SKILLSYNC_{s.upper()}_FILE" for s in SECRET_FIELDS}
    return frozenset(names | OTHER_OWN_NAMES)


def env_notes(env: Mapping[str, str]) -> list[EnvNote]:
    """Conflicting names for one setting, and SKILLSYNC_* variables that are no setting.

    Both are easy to miss: a seed name left behind after moving to SKILLSYNC_ names
    silently loses, and a typo silently configures nothing.
    """
    notes: list[EnvNote] = []
    for f in dataclasses.fields(Config):
        found = env_candidates(env, f.name)
        if len({value for _, value in found}) > 1:
            winner, losers = found[0][0], tuple(var for var, _ in found[1:])
            notes.append(EnvNote(
                "env_conflict", winner,
                f"{winner} and {', '.join(losers)} are set to different values; "
                f"{winner} wins (remove the other to silence this)", ignored=losers))
    known = known_env_names()
    for var in sorted(env):
        if var.startswith("SKILLSYNC_") and var not in known:
            close = difflib.get_close_matches(var, sorted(known), n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]}?" if close else ""
            notes.append(EnvNote("env_unknown", var,
                                 f"{var} is not a skillsyncd setting and is ignored{hint}",
                                 suggestion=close[0] if close else None))
    return notes
