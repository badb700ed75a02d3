"""Values assigned to names: a provider's format under the provider's name (keyed rules),
a random value under a name that says "credential" (``secret.named-credential``), and a
high-entropy value under a vaguer name (``secret.generic``).

An assignment is found from its separator (a character class the engine jumps to); the
name before it is then read backwards and must mention a key, token, secret or password.
Every common form is read: ``KEY=value``, ``export KEY=value``, ``key: value``,
``"key": "value"``, ``key => value``, ``("KEY", "value")``; in a binary's printable runs
also ``KEYvalue`` back to back, as a database row stores a name and its value.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator

from skillsyncd.validation.secrets.compiled import (
    KEYED,
    KEYED_BY_WORD,
    Candidate,
    Compiled,
    longer_needles,
    needle_trie,
)
from skillsyncd.validation.secrets.structural import AWS_SECRET, aws_secret_like
from skillsyncd.validation.secrets.values import (
    credential_value,
    entropy,
    env_or_template,
    generic_value,
    looks_made_up,
)

_VALUE = r"[\w\-+/=.~!@#%^&*?:|]"
# A quoted value is read whole when it holds no space (a Django key's ``(``, ``)`` and ``$``
# belong to it); so is an unquoted one that runs to the end of its line, as `.env` files and
# YAML read it; otherwise the value is the run of value characters after the separator.
_ASSIGN = re.compile(
    r"(?P<sep>:=|=>|::|[:=,])[ \t]{0,4}(?:(?P<q>\\?[\"'`])(?P<qs>[^\s\"'`\\]{8,300})(?=\\?[\"'`])"
    r"|(?P<eol>[^\s\"'`\\]{8,300})(?=\r?\n|\Z)"
    r"|(?:\\?[\"'`])?(?P<s>" + _VALUE + r"{8,300})(?!" + _VALUE + "))"
)
_STAND_IN_NEXT = frozenset("<${*…[")
_CALLEE = re.compile(r"[A-Za-z_$][\w$.]*")
_KEY_BEFORE = re.compile(r"([\w.\-]{1,60})([\"'\]]{0,2})[ \t]{0,4}$")
_KEYWORD = re.compile(
    r"secret|token|passw|pwd|pass|api_?key|apikey|access_?key|private_?key|auth_?key|credential"
    r"|signing_?key|encryption_?key|master_?key|account_?key|app_?key|license_?key"
)
_KEY_WORDS = ("secret", "token", "passw", "pwd", "pass", "key", "credential")
# Any word that makes the name before a separator worth reading: the keywords above and
# the provider names of the keyed rules.
_NEAR_WORDS = (*_KEY_WORDS, *(k for c in KEYED for k in c.rule.keywords))
_NEAR_TRIE = needle_trie(_NEAR_WORDS)
_NEAR_LONGER = longer_needles(_NEAR_WORDS)
_TELLING = re.compile(
    r"(?:^|_)(?:api_?key|apikey|secret|secret_?key|client_?secret|access_?token|auth_?token|refresh_?token"
    r"|bearer(?:_?token)?|token|password|passwd|pwd|pass|private_?key|access_?key|secret_?access_?key"
    r"|signing_?key|encryption_?key|master_?key|app_?key|license_?key|webhook_?secret|credentials?"
    r"|auth_?key|sas_?key|account_?key|shared_?access_?key|passphrase|secret_?key_?base)$"
)
_NOT_TELLING = re.compile(
    r"(?:^|_)(?:public|publishable|pub|csrf|xsrf|page|next|cursor|continuation"
    r"|sha\d*|hash|checksum|digest|example|sample|dummy|fake|placeholder)(?:_|$)"
)
_PASSWORD_KEY = re.compile(r"(?:pass|pwd|passphrase)$")
_AWS_SECRET_KEY = re.compile(r"(?:aws_?secret(?:_?access)?(?:_?key)?|secret_?access_?key)$")
# In a binary's runs: a credential word at the end of a name, its value right after it.
_GLUED_WORD = re.compile(r"(?i:password|passwd|passphrase|credentials?|secret|token|pwd|pass|key)")
_GLUED_NAME = re.compile(r"[A-Za-z][\w.\-]{0,60}$")
_GLUED_VALUE = re.compile(_VALUE + r"{8,300}")
_NOT_GLUED = frozenset("=:.,!@#%^&*?|~")


def snake(name: str) -> str:
    name = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def _min_entropy(c: Compiled, value: str) -> float:
    """The rule's minimum, lowered for short values: 15 random characters repeat a few of
    them often enough to fall under 3 bits (log2(15) is 3.9 at most)."""
    return min(c.rule.min_entropy, math.log2(max(2, len(value))) - 1.0)


def _keyed(name: str, value: str, start: int, glued: bool) -> Candidate | None:
    """A provider's format assigned to a name holding the provider's name."""
    words = set(_NEAR_TRIE.findall(name))
    words.update(w for s in list(words) for w in _NEAR_LONGER.get(s, ()) if w in name)
    for word in sorted(words, key=len, reverse=True):
        for c in KEYED_BY_WORD.get(word, ()):
            m = c.regex.match(value) if glued else c.regex.fullmatch(value)
            if m is None:
                continue
            found = m.group()
            if looks_made_up(found) or entropy(found) < _min_entropy(c, found) or env_or_template(found):
                continue
            return Candidate(c.rule.id, found, start, start + len(found))
    return None


def judge(name: str, value: str, start: int, glued: bool = False) -> Candidate | None:
    """The rule, if any, that ``name = value`` breaks (``value`` starts at ``start``)."""
    found = _keyed(name.lower(), value, start, glued)
    if found is not None:
        return found
    key = snake(name)
    if not _KEYWORD.search(key) and not _KEYWORD.search(key.replace("_", "")):
        return None
    end = start + len(value)
    telling = bool(_TELLING.search(key)) and not _NOT_TELLING.search(key)
    if telling and _AWS_SECRET_KEY.search(key) and AWS_SECRET.fullmatch(value):
        return Candidate("secret.aws-secret-key", value, start, end) if aws_secret_like(value) else None
    if telling and credential_value(value, password=bool(_PASSWORD_KEY.search(key))):
        return Candidate("secret.named-credential", value, start, end)
    if generic_value(value):
        return Candidate("secret.generic", value, start, end)
    return None


def _name_before(text: str, m: re.Match[str]) -> str | None:
    """The name an assignment's separator follows, or None when there is none worth reading:
    no credential word near, a whole '<NAME=value>' stand-in, or a comma that does not
    separate the two items of a tuple or call (``("KEY", "value")``)."""
    near = text[max(0, m.start() - 70) : m.start()]
    if not _NEAR_TRIE.search(near.lower()):
        return None  # most separators: no credential word or provider name before them
    before = _KEY_BEFORE.search(near)
    if before is None or near[: before.start(1)].endswith("<"):
        return None
    if m.group("sep") == ",":
        head = near[: before.start(1)]
        if not before.group(2) or not head.endswith(("\"", "'")):
            return None  # an unquoted word before a comma: prose
        if not head[:-1].rstrip(" \t").endswith(("(", "[", "{")):
            return None  # a quoted value before a comma, not the first item of a tuple or call
    return before.group(1)


def _inner_assignment(value: str) -> int:
    """Where a separator inside a value follows a credential word (``, _TWITTER_KEY=…``
    read as one value after the comma): the scan goes on from there, or -1."""
    at = min((i for i in (value.find("="), value.find(":")) if i > 0), default=-1)
    return at if at > 0 and _NEAR_TRIE.search(value[:at].lower()) else -1


def assignments(text: str, glued: bool = False) -> Iterator[Candidate]:
    """``name = value`` in every common form; in a binary's runs (``glued``) the value may
    run on into the next record, so a provider's format need only start it."""
    pos = 0
    while (m := _ASSIGN.search(text, pos)) is not None:
        pos = m.end()
        group = next(g for g in ("qs", "eol", "s") if m.group(g) is not None)
        raw = m.group(group)
        value = raw.rstrip(".,;")
        if len(value) < 8:
            continue
        if text[m.end(group) : m.end(group) + 1] == "(" and _CALLEE.fullmatch(value):
            continue  # a call: code, not data
        name = _name_before(text, m)
        if name is None and (inner := _inner_assignment(value)) > 0:
            pos = m.start(group) + inner  # the value held the name and its separator
            continue
        if name is None or looks_made_up(raw) or text[m.end(group) : m.end(group) + 1] in _STAND_IN_NEXT:
            continue  # no name, a stand-in, or a value that goes on as one (`pypi-…<your-token>`)
        found = judge(name, value, m.start(group), glued)
        if found is not None:
            yield found


def glued_assignments(text: str) -> Iterator[Candidate]:
    """Names and values back to back, as a binary stores them (``GITHUB_TOKENghp_…``)."""
    for m in _GLUED_WORD.finditer(text):
        value = _GLUED_VALUE.match(text, m.end())
        if value is None or text[m.end()] in _NOT_GLUED:
            continue  # a separator follows the word: an ordinary assignment, read as one
        if text[value.end() : value.end() + 1] in _STAND_IN_NEXT:
            continue
        name = _GLUED_NAME.search(text, max(0, m.start() - 60), m.end())
        if name is None:
            continue
        if value.group()[0] in "_-":
            # the name goes on (REWARD_TOKEN_ADDRESS0x…): only a provider's format says where
            found = _keyed(name.group().lower(), value.group(), value.start(), glued=True)
        else:
            found = judge(name.group(), value.group(), value.start(), glued=True)
        if found is not None:
            yield found
