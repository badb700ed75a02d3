"""Find credentials committed into skills, without ever echoing them.

Skills are loaded into the model's context, so a credential in any file of a skill
reaches every model provider the gateway talks to. The rules live in one table
(:mod:`skillsyncd.validation.secret_rules`): self-identifying token formats, provider
formats that need the provider's name next to them, and a few structural rules
(private keys, AWS key pairs, JWTs, credentials in URLs and authorization headers,
values assigned to names that say "credential"). Every provider format is an error;
JWTs, a lone AWS key id and generic high-entropy assignments are warnings.

Cheap on prose: each rule names literal text one of its matches must contain (the
prefilter); a window of text without any of them is not searched with that rule.

What is not a secret stays silent: placeholders (``YOUR_API_KEY``, ``sk-...``,
``xxxx``), documented example keys (``AKIAIOSFODNN7EXAMPLE``), patterned fakes
(``A1B2C3…``, ``abcabc…``), hashes and UUIDs under names that are not credentials,
public keys, and environment look-ups (``process.env.X``, ``os.environ["X"]``, ``$X``).

Every file is scanned up to the caller's size cap, in 1 MiB windows that overlap so
no match is cut and line numbers stay exact. UTF-16 and BOM-marked text is decoded;
compressed media (images, audio, archives) is skipped by its magic bytes; other
binaries (SQLite, ...) are scanned for their printable ASCII runs, as ``strings`` would.

A hit is reported by a keyed fingerprint (HMAC-SHA256 with a per-state-dir random key),
never by its value, so a log reader cannot confirm a guessed password offline.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import codecs
import contextlib
import fnmatch
import hashlib
import hmac
import json
import math
import os
import re
import threading
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from skillsyncd.validation.secret_rules import (
    KEYED_RULES,
    SECRET_RULES,
    TOKEN_RULES,
    SecretRule,
    format_regex,
)

ALLOWLIST_FILE = ".skillsync-allow"
KEY_FILE = "fingerprint.key"
WINDOW_CHARS = 1024 * 1024  # scanned at a time; bounds memory whatever the file size
CONTEXT_CHARS = 4096  # overlap on each side of a window: longer than any match and its context
BINARY_SNIFF_BYTES = 8192
AWS_PAIR_LINES = 5
AWS_PAIR_CHARS = 1000
MAX_HITS_PER_FILE = 50  # a file of generated keys says enough after fifty

_B = r"(?<![A-Za-z0-9_\-])"  # left boundary: not inside a longer token
_E = r"(?![A-Za-z0-9_\-])"  # right boundary


# --- hits and fingerprints ---------------------------------------------------------------


@dataclass(frozen=True)
class Hit:
    rule: str
    line: int
    secret: str = field(repr=False)  # never printed, logged or stored
    label: str
    shown: str = ""  # a public prefix that names the format ('ghp_'), never secret material

    def fingerprint(self, key: bytes) -> str:
        return fingerprint(self.secret, key, self.shown)


def fingerprint(secret: str, key: bytes, shown: str = "") -> str:
    """``shown…`` + 12 hex of HMAC-SHA256(key, secret): stable per key, useless without it."""
    digest = hmac.new(key, secret.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()
    return f"{shown}…{digest[:12]}"


def legacy_digest(secret: str) -> str:
    """The unkeyed digest older .skillsync-allow files list (first 12 hex of SHA-256)."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()[:12]


_PROCESS_KEY = os.urandom(32)
_KEYS: dict[Path, bytes] = {}
_KEYS_LOCK = threading.Lock()


def fingerprint_key(state_dir: Path | str | None) -> bytes:
    """The state dir's fingerprint key (``<state_dir>/fingerprint.key``, 0600), created
    atomically on first use; a random per-process key when there is no usable state dir
    (``skillsyncd validate PATH`` in CI). The key is never logged."""
    if state_dir is None:
        return _PROCESS_KEY
    folder = Path(state_dir)
    with _KEYS_LOCK:
        if folder in _KEYS:
            return _KEYS[folder]
        key = _load_or_create_key(folder)
        if key is None:
            return _PROCESS_KEY  # not cached: the state dir may appear later
        _KEYS[folder] = key
        return key


def _load_or_create_key(folder: Path) -> bytes | None:
    path = folder / KEY_FILE
    try:
        data = path.read_bytes()
        if len(data) >= 32:
            return data[:32]
    except FileNotFoundError:
        pass
    except OSError:
        return None
    if not folder.is_dir():
        return None
    tmp = folder / f".{KEY_FILE}.{os.getpid()}.{threading.get_ident()}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, os.urandom(32))
            os.fsync(fd)
        finally:
            os.close(fd)
        with contextlib.suppress(FileExistsError):  # another process made it first: use theirs
            os.link(tmp, path)  # atomic: readers never see a half-written key
        data = path.read_bytes()
        return data[:32] if len(data) >= 32 else None
    except OSError:
        return None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


# --- the allow-list ------------------------------------------------------------------------

_HEX12 = re.compile(r"(?:^|…|\.\.\.|\s)([0-9a-f]{12})$")
_ENTRY = re.compile(r"^(?P<path>[^\s]+?):(?P<rule>(?:secret\.)?[A-Za-z0-9.*?\[\]_\-]+)(?::(?P<line>\d+))?$")


@dataclass(frozen=True)
class AllowList:
    """``path:rule[:line]`` entries (globs allowed) and legacy SHA-256 digests."""

    entries: tuple[tuple[str, str, int | None], ...] = ()
    legacy: frozenset[str] = frozenset()

    def match(self, hit: Hit, path: str) -> str | None:
        """'entry' or 'legacy' when the hit at ``path`` is allowed, else None."""
        for p, r, line in self.entries:
            if (
                fnmatch.fnmatchcase(path, p)
                and fnmatch.fnmatchcase(hit.rule, r)
                and (line is None or line == hit.line)
            ):
                return "entry"
        if self.legacy and legacy_digest(hit.secret) in self.legacy:
            return "legacy"
        return None


def _entry_of(line: str) -> str | None:
    line = line.split("#", 1)[0].strip()
    if not line:
        return None
    m = _HEX12.search(line)
    if m and ":" not in line:
        return m.group(1)
    e = _ENTRY.match(line)
    if e:
        rule = e.group("rule")
        rule = rule if rule.startswith(("secret.", "*")) else f"secret.{rule}"
        return f"{e.group('path').lstrip('/')}:{rule}" + (f":{e.group('line')}" if e.group("line") else "")
    return None


def parse_allowlist(data: bytes | str) -> frozenset[str]:
    """Entries of a .skillsync-allow file (one per line, '#' comments), normalised.

    ``skills/demo/notes.md:secret.github-pat`` allows that rule in that file (globs
    work: ``skills/*/tests/*:secret.*``); ``…:12`` pins it to line 12. A legacy line
    holding a 12-hex SHA-256 digest ('ghp_…0123456789ab') still works, with a warning.
    """
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    return frozenset(e for raw in text.splitlines() if (e := _entry_of(raw)) is not None)


def normalise_allowed(allowed: Collection[str]) -> AllowList:
    entries: list[tuple[str, str, int | None]] = []
    legacy: set[str] = set()
    for raw in allowed:
        e = _entry_of(raw)
        if e is None:
            continue
        if ":" not in e:
            legacy.add(e)
            continue
        m = _ENTRY.match(e)
        if m:
            entries.append(
                (m.group("path"), m.group("rule"), int(m.group("line")) if m.group("line") else None)
            )
    return AllowList(tuple(entries), frozenset(legacy))


# --- what is not a secret ------------------------------------------------------------------

_PLACEHOLDER = re.compile(
    r"x{4,}|X{4,}|\*{3,}|\.{3}|…|0{8,}|1234567|abcdef(?:gh|12)|your|example|sample|placeholder"
    r"|replace|dummy|fake|redacted|insert|changeme|<|>|\{|\}|\$\{|(?-i:\$[A-Z_]{3})",
    re.IGNORECASE,
)
# Published example values that would otherwise look random.
_KNOWN_EXAMPLES = frozenset(
    {
        "550e8400-e29b-41d4-a716-446655440000",
        "123e4567-e89b-12d3-a456-426614174000",
        "123e4567-e89b-12d3-a456-426655440000",
        "6ba7b810-9dad-11d1-80b4-00c04fd430c8",
        "f47ac10b-58cc-4372-a567-0e02b2c3d479",
        "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
    }
)


_WRAPS = frozenset({(ord("9"), ord("0")), (ord("z"), ord("a"))})


def _ascending(codes: list[int], gap: int) -> int:
    return sum(1 for a, b in zip(codes, codes[gap:], strict=False) if b - a == 1 or (a, b) in _WRAPS)


def patterned(token: str) -> bool:
    """Ascending runs (``abcdef``, ``A1B2C3``) or a repeated short unit: typed, not generated."""
    core = re.sub(r"[^A-Za-z0-9]", "", token)
    n = len(core)
    if n < 12:
        return False
    codes = [ord(c) for c in core.lower()]
    if max(_ascending(codes, 1), _ascending(codes, 2)) >= 0.45 * (n - 2):
        return True
    return any(all(core[i] == core[i - p] for i in range(p, n)) for p in range(1, min(8, n // 3) + 1))


def looks_made_up(token: str) -> bool:
    """True for documentation stand-ins: few distinct characters, placeholder words, patterns."""
    core = re.sub(r"[^A-Za-z0-9]", "", token)
    return (
        len(set(core)) < min(8, max(4, len(core) // 3))
        or bool(_PLACEHOLDER.search(token))
        or token in _KNOWN_EXAMPLES
        or patterned(token)
    )


def entropy(token: str) -> float:
    counts: dict[str, int] = {}
    for ch in token:
        counts[ch] = counts.get(ch, 0) + 1
    n = len(token)
    return -sum(c / n * math.log2(c / n) for c in counts.values()) if n else 0.0


def _classes(s: str) -> int:
    return (
        bool(re.search(r"[a-z]", s))
        + bool(re.search(r"[A-Z]", s))
        + bool(re.search(r"\d", s))
        + bool(re.search(r"[^A-Za-z0-9]", s))
    )


def _mixed(s: str) -> bool:
    return bool(re.search(r"[a-z]", s)) + bool(re.search(r"[A-Z]", s)) + bool(re.search(r"\d", s)) >= 2


_DOTTED_NAME = re.compile(r"[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)+(?:\(\)?)?")
_WORD_PARTS = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+|[_.\-]")


def identifier_like(value: str) -> bool:
    """Code, not data: ``process.env.TOKEN``, ``GITHUB_TOKEN``, ``getApiKeyFromVault``."""
    if _DOTTED_NAME.fullmatch(value) or re.fullmatch(r"[A-Z][A-Z0-9_]*", value):
        return True
    if re.search(r"\d", value):
        return False
    words = [w for w in _WORD_PARTS.findall(value) if w not in "_.-"]
    return bool(words) and all(len(w) >= 3 for w in words)


_WEAK_PASSWORD = re.compile(
    r"(?:password|passwd|pass|admin|secret|test|demo|user|root|qwerty|letmein|welcome|default|guest"
    r"|postgres|mysql|redis|mongo|neo4j|changeit|foo|bar|baz|hunter|login|local|dev)+"
    r"[0-9]{0,6}[!@#%^&*?.]{0,3}",
    re.IGNORECASE,
)

# Values that look like keys but are public or test-mode only.
_NOT_SECRET_PREFIXES = (
    "sk_test_",
    "rk_test_",
    "pk_test_",
    "pk_live_",
    "sha1-",
    "sha256-",
    "sha384-",
    "sha512-",
    "sha256:",
    "sha512:",
    "md5-",
    "FLWPUBK",
)


# --- compiled rules ------------------------------------------------------------------------

_SEP = r"[\"'\]]{0,2}[ \t]{0,4}(?::=|=>|::|[:=,])[ \t]{0,4}(?:\\?[\"'`])?"


@dataclass(frozen=True)
class _Compiled:
    rule: SecretRule
    regex: re.Pattern[str]
    shown: tuple[str, ...]  # literal prefixes a match may start with (shown in fingerprints)


def _compile(rule: SecretRule) -> _Compiled:
    body = "|".join(format_regex(f) for f in rule.formats)
    if rule.kind == "keyed":  # matched against an assigned value found by the assignment pass
        return _Compiled(rule, re.compile(f"(?:{body})"), ())
    regex = re.compile(rf"(?P<s>{body}){_E}")  # left boundary checked in code: a lookbehind
    # in front would stop the regex engine from jumping to the literal prefix
    shown = tuple(f[0] for f in rule.formats if isinstance(f[0], str) and len(f[0]) <= 12)
    return _Compiled(rule, regex, shown)


_TOKENS = tuple(_compile(r) for r in TOKEN_RULES)
_KEYED = tuple(_compile(r) for r in KEYED_RULES)
_ALL_NEEDLES = tuple(sorted({n for c in _TOKENS for n in c.rule.prefilter}))
_TOKEN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


def _needle_trie(needles: Collection[str]) -> re.Pattern[str]:
    """One regex that finds, at every position, the shortest needle starting there."""
    trie: dict[str, dict] = {}  # type: ignore[type-arg]
    for word in needles:
        node = trie
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = {}

    def alt(node: dict) -> str:  # type: ignore[type-arg]
        if "" in node:
            return ""
        parts = [re.escape(ch) + alt(sub) for ch, sub in sorted(node.items())]
        return parts[0] if len(parts) == 1 else "(?:" + "|".join(parts) + ")"

    return re.compile(f"(?=({alt(trie)}))")


_NEEDLE_TRIE = _needle_trie(_ALL_NEEDLES)
# needle -> the longer needles that start with it (the trie reports only the shortest)
_LONGER = {n: tuple(m for m in _ALL_NEEDLES if m != n and m.startswith(n)) for n in _ALL_NEEDLES}
# Every token is 16+ characters of these: only such runs can hold one.
_LONG_RUN = re.compile(r"[A-Za-z0-9_\-+/=.~:$|@%]{16,}")
_KEYED_BY_WORD = {
    k: tuple(c for c in _KEYED if k in c.rule.keywords) for c in _KEYED for k in c.rule.keywords
}
_RULES_BY_ID = {r.id: r for r in SECRET_RULES}


def _label(rule_id: str) -> str:
    r = _RULES_BY_ID[rule_id]
    kind = rule_id.removeprefix("secret.").replace("-", " ")
    return f"{r.provider} credential ({kind})" if r.kind != "structural" else kind


def _runs(text: str) -> str:
    """The window's distinct runs of 16+ token characters, lowercased: every token match
    lies in one, and prose has few, so needles are looked for in far less text."""
    return "\n".join(set(_LONG_RUN.findall(text))).lower()


def _needles_in(runs: str) -> frozenset[str]:
    """Needles present in ``runs``: one pass of the trie gives the shortest needle at each
    position; longer needles sharing that start are then checked one by one."""
    short = set(_NEEDLE_TRIE.findall(runs))
    return frozenset(short).union(*((m for m in _LONGER[s] if m in runs) for s in short))


_AWS_ID = re.compile(r"(?<![A-Z0-9])(?:AKIA|ASIA|ABIA|ACCA|A3T[A-Z0-9])[A-Z0-9]{16}(?![A-Z0-9])")
_AWS_SECRET = re.compile(r"(?<![A-Za-z0-9/+=])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])")
_AWS_NEEDLES = ("AKIA", "ASIA", "ABIA", "ACCA", "A3T")
_PEM = re.compile(r"-----BEGIN ((?:[A-Z0-9]+ )*)PRIVATE KEY( BLOCK)?-----")
_PEM_BODY = re.compile(r"[A-Za-z0-9+/=]{40,}")
_PEM_NEEDLE = "PRIVATE KEY"
_JWT = re.compile(_B + r"(eyJ[A-Za-z0-9_\-]{8,})\.(eyJ[A-Za-z0-9_\-]{8,})\.([A-Za-z0-9_\-]{16,})" + _E)
_JWT_NEEDLE = "eyJ"
_URL_CRED = re.compile(  # from '://' (a literal the engine can jump to), the scheme does not matter
    r"://(?P<user>[^\s:/@'\"`<>()\[\]{}]{0,100}):(?P<s>[^\s/@'\"`<>\[\]{}]{3,200})@(?=[A-Za-z0-9\[])"
)
_URL_NEEDLE = "://"
_AUTH_HEADER = re.compile(
    r"(?i:authorization)[\"']?[ \t]{0,4}[:=,][ \t]{0,4}[\"']?(?P<scheme>(?i:bearer|token|basic))[ \t]+"
    r"(?P<s>[A-Za-z0-9_\-.~+/=]{16,600})" + r"(?![A-Za-z0-9_\-.~+/=])"
)
_AUTH_NEEDLE = "uthorization"  # 'Authorization' and 'authorization'
# An assignment is found from its separator (a character class the engine jumps to); the
# name before it is then read backwards and must mention a key, token, secret or password.
_ASSIGN = re.compile(
    r"(?::=|=>|::|[:=,])[ \t]{0,4}(?:\\?[\"'`])?(?P<s>[\w\-+/=.~!@#%^&*?:|]{8,300})(?![\w\-+/=.~!@#%^&*?:|])"
)
_KEY_BEFORE = re.compile(r"([\w.\-]{1,60})[\"'\]]{0,2}[ \t]{0,4}$")
_KEYWORD = re.compile(
    r"secret|token|passw|pwd|pass|api_?key|apikey|access_?key|private_?key|auth_?key|credential"
    r"|signing_?key|encryption_?key|master_?key|account_?key|app_?key|license_?key"
)
_KEY_WORDS = ("secret", "token", "passw", "pwd", "pass", "key", "credential")
# Any word that makes the name before a separator worth reading: the keywords above and
# the provider names of the keyed rules.
_NEAR_WORDS = (*_KEY_WORDS, *(k for c in _KEYED for k in c.rule.keywords))
_NEAR_TRIE = _needle_trie(_NEAR_WORDS)
_NEAR_LONGER = {n: tuple(m for m in _NEAR_WORDS if m != n and m.startswith(n)) for n in _NEAR_WORDS}
_TELLING = re.compile(
    r"(?:^|_)(?:api_?key|apikey|secret|secret_?key|client_?secret|access_?token|auth_?token|refresh_?token"
    r"|bearer(?:_?token)?|token|password|passwd|pwd|pass|private_?key|access_?key|secret_?access_?key"
    r"|signing_?key|encryption_?key|master_?key|app_?key|license_?key|webhook_?secret|credentials?"
    r"|auth_?key|sas_?key|account_?key|shared_?access_?key|passphrase)$"
)
_NOT_TELLING = re.compile(
    r"(?:^|_)(?:public|publishable|pub|csrf|xsrf|page|next|cursor|continuation"
    r"|sha\d*|hash|checksum|digest|example|sample|dummy|fake|placeholder)(?:_|$)"
)
_PASSWORD_KEY = re.compile(r"(?:pass|pwd|passphrase)$")
_AWS_SECRET_KEY = re.compile(r"(?:aws_?secret(?:_?access)?(?:_?key)?|secret_?access_?key)$")
_HEXV = re.compile(r"[0-9a-fA-F]+")
_UUIDV = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def _snake(name: str) -> str:
    name = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def _env_or_template(value: str) -> bool:
    return bool(re.search(r"\$|%[A-Za-z_]+%|\{\{|getenv|environ|process\.env|\bENV\[", value))


def _credential_value(value: str, password: bool) -> bool:
    """A value that is data, random-looking and not a stand-in: what a named credential holds."""
    if (
        looks_made_up(value)
        or identifier_like(value)
        or _env_or_template(value)
        or value.startswith(_NOT_SECRET_PREFIXES)
        or value.startswith(("/", "./", "~/", "http"))
        or value.lower() in ("true", "false", "null", "none")
    ):
        return False
    if _UUIDV.fullmatch(value):
        return entropy(value) >= 3.0
    if _HEXV.fullmatch(value):
        return (
            len(value) >= 20
            and re.search(r"\d", value) is not None
            and re.search(r"[a-fA-F]", value) is not None
            and entropy(value) >= 3.0
        )
    if password:
        return (
            len(value) >= 10
            and _classes(value) >= 2
            and entropy(value) >= 2.8
            and not _WEAK_PASSWORD.fullmatch(value)
            and not re.fullmatch(r"[A-Za-z]+\d{1,4}", value)
        )
    return len(value) >= 16 and _classes(value) >= 2 and entropy(value) >= 3.3


def _generic_value(value: str) -> bool:
    """The looser test for a warning: a high-entropy mixed value of 20+ characters."""
    return (
        len(value) >= 20
        and not looks_made_up(value)
        and _mixed(value)
        and entropy(value) >= 3.5
        and not value.startswith(_NOT_SECRET_PREFIXES)
        and not identifier_like(value)
        and not _env_or_template(value)
        and not re.fullmatch(r"[a-z0-9_.\-]+", value)
        and "://" not in value
    )


def _url_password(user: str, password: str) -> bool:
    if (
        password == user
        or looks_made_up(password)
        or _env_or_template(password)
        or _WEAK_PASSWORD.fullmatch(password)
        or re.fullmatch(r"[A-Za-z]+\d{0,4}", password)
        or re.fullmatch(r"\d{1,5}", password)
    ):
        return False
    return (
        len(password) >= 8 and (_classes(password) >= 2 or len(password) >= 16) and entropy(password) >= 2.5
    )


def _b64json(part: str) -> object:
    try:
        raw = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
        return json.loads(raw)
    except (binascii.Error, ValueError):
        return None


class _Lines:
    """Line starts, computed on the first hit: most windows have none."""

    def __init__(self, text: str) -> None:
        self._text = text
        self._starts: list[int] | None = None

    @property
    def starts(self) -> list[int]:
        if self._starts is None:
            self._starts = [0] + [m.end() for m in re.finditer("\n", self._text)]
        return self._starts

    def of(self, pos: int) -> int:
        return bisect.bisect_right(self.starts, pos)


_ESCAPE = re.compile(r"\\(?:u[0-9a-fA-F]{4}|[nrt/\"'\\])")
_ESCAPE_FIND = re.compile(r"\\(?:u[0-9a-fA-F]{4}|[nrt/\"'])")


def _escaped_lines(text: str, lo: int, hi: int) -> Iterator[tuple[int, str]]:
    """(start, line) for each line in text[lo:hi] holding a JSON/YAML string escape."""
    pos = lo
    while True:
        m = _ESCAPE_FIND.search(text, pos, hi)
        if m is None:
            return
        start = text.rfind("\n", 0, m.start()) + 1
        end = text.find("\n", m.end())
        end = len(text) if end < 0 else end
        yield start, text[start:end]
        pos = end + 1


def _unescape(s: str) -> str:
    def one(m: re.Match[str]) -> str:
        e = m.group()
        if e[1] == "u":
            return chr(int(e[2:], 16))
        return {"n": "\n", "r": "", "t": "\t"}.get(e[1], e[1])

    return _ESCAPE.sub(one, s)


class _Scan:
    """One window of text: every rule, claims so that overlapping hits are reported once."""

    def __init__(self, text: str, lines_before: int, own: tuple[int, int], budget: int) -> None:
        self.text = text
        self.lines = _Lines(text)
        self.lines_before = lines_before
        self.own = own
        self.budget = budget
        self.hits: list[tuple[int, Hit]] = []
        self.taken: list[tuple[int, int]] = []

    def claim(self, start: int, end: int) -> bool:
        if any(s < end and start < e for s, e in self.taken):
            return False
        self.taken.append((start, end))
        return True

    def add(
        self, rule: str, secret: str, start: int, end: int, shown: str = "", at: int | None = None
    ) -> None:
        at = start if at is None else at
        if len(self.hits) >= self.budget:
            return
        if not (self.own[0] <= at < self.own[1]):
            self.claim(start, end)  # another window owns it; still keep weaker rules off it
            return
        if self.claim(start, end):
            self.hits.append(
                (at, Hit(rule, self.lines_before + self.lines.of(at), secret, _label(rule), shown))
            )

    def run(self) -> None:
        text = self.text
        present = _needles_in(_runs(text))
        for c in _TOKENS:
            if present.isdisjoint(c.rule.prefilter):
                continue
            for m in c.regex.finditer(text):
                token = m.group("s")
                if m.start() and text[m.start() - 1] in _TOKEN_CHARS:
                    continue  # inside a longer token
                if (
                    looks_made_up(token)
                    or entropy(token) < c.rule.min_entropy
                    or not self._shape_ok(c, token)
                ):
                    continue
                shown = next((p for p in c.shown if token.startswith(p)), "")
                self.add(c.rule.id, token, m.start("s"), m.end("s"), shown)
        if _PEM_NEEDLE in text:
            self._pem()
        if any(n in text for n in _AWS_NEEDLES):
            self._aws()
        if _JWT_NEEDLE in text:
            self._jwt()
        if _URL_NEEDLE in text:
            self._urls()
        if _AUTH_NEEDLE in text or "UTHORIZATION" in text:
            self._auth_headers()
        self._assignments()

    @staticmethod
    def _shape_ok(c: _Compiled, token: str) -> bool:
        if c.rule.id in (
            "secret.slack-token",
            "secret.twilio-api-key",
            "secret.octopus-deploy-api-key",
            "secret.mailchimp-api-key",
            "secret.mailgun-api-key",
        ):
            return bool(re.search(r"\d", token)) and bool(re.search(r"[A-Za-z]", token[4:]))
        return True

    def _pem(self) -> None:
        text = self.text
        for m in _PEM.finditer(text):
            # the key material between this header and its END line (or just after the
            # header when there is none): never base64 from whatever follows a stand-in
            end = text.find("-----END", m.end(), m.end() + 10_000)
            after = text[m.end() : end if end >= 0 else m.end() + 200].replace("\\n", "\n")
            body = _PEM_BODY.search(after)
            if body and not looks_made_up(body.group()) and entropy(body.group()) >= 4.0:
                self.add("secret.private-key", body.group(), m.start(), m.end(), "PEM")

    def _aws(self) -> None:
        text, lines = self.text, self.lines
        for m in _AWS_ID.finditer(text):
            if len(self.hits) >= self.budget:
                return
            key_id = m.group()
            if looks_made_up(key_id):
                continue
            line = lines.of(m.start())
            lo = max(lines.starts[max(0, line - 1 - AWS_PAIR_LINES)], m.start() - AWS_PAIR_CHARS)
            hi_line = min(len(lines.starts), line + AWS_PAIR_LINES)
            hi = min(
                lines.starts[hi_line] if hi_line < len(lines.starts) else len(text), m.end() + AWS_PAIR_CHARS
            )
            pair = next(
                (
                    s
                    for s in _AWS_SECRET.finditer(text, lo, hi)
                    if re.search(r"[a-z]", s.group())
                    and re.search(r"[A-Z]", s.group())
                    and not looks_made_up(s.group())
                    and entropy(s.group()) > 4.0
                ),
                None,
            )
            if pair is not None:
                self.add("secret.aws-secret-key", pair.group(), pair.start(), pair.end())
                self.claim(m.start(), m.end())
            else:
                self.add("secret.aws-access-key-id", key_id, m.start(), m.end(), key_id[:4])

    def _jwt(self) -> None:
        for m in _JWT.finditer(self.text):
            header = _b64json(m.group(1))
            if isinstance(header, dict) and "alg" in header and m.group(3) not in _KNOWN_EXAMPLES:
                self.add("secret.jwt", m.group(), m.start(), m.end(), "eyJ")

    def _urls(self) -> None:
        for m in _URL_CRED.finditer(self.text):
            if _url_password(m.group("user"), m.group("s")):
                self.add("secret.url-credential", m.group("s"), m.start("s"), m.end("s"))

    def _auth_headers(self) -> None:
        for m in _AUTH_HEADER.finditer(self.text):
            value = m.group("s")
            if m.group("scheme").lower() == "basic":
                try:
                    decoded = base64.b64decode(value, validate=True).decode("utf-8")
                except (binascii.Error, ValueError):
                    continue
                user, sep, password = decoded.partition(":")
                if not sep or not _url_password(user, password):
                    continue
            elif not _credential_value(value, password=False):
                continue
            self.add("secret.http-authorization", value, m.start("s"), m.end("s"))

    def _keyed(self, name: str, value: str, start: int) -> bool:
        """A provider's format assigned to a name holding the provider's name."""
        words = set(_NEAR_TRIE.findall(name))
        words.update(w for s in list(words) for w in _NEAR_LONGER.get(s, ()) if w in name)
        for word in sorted(words, key=len, reverse=True):
            for c in _KEYED_BY_WORD.get(word, ()):
                if c.regex.fullmatch(value) is None:
                    continue
                if looks_made_up(value) or entropy(value) < c.rule.min_entropy or _env_or_template(value):
                    continue
                self.add(c.rule.id, value, start, start + len(value))
                return True
        return False

    def _assignments(self) -> None:
        text = self.text
        for m in _ASSIGN.finditer(text):
            value = m.group("s").rstrip(".,;")
            if len(value) < 8:
                continue
            near = text[max(0, m.start() - 70) : m.start()]
            if not _NEAR_TRIE.search(near.lower()):
                continue  # most separators: no credential word or provider name before them
            before = _KEY_BEFORE.search(near)
            if before is None or looks_made_up(m.group("s")) or near[: before.start(1)].endswith("<"):
                continue  # no name, a stand-in value, or a whole '<NAME=value>' stand-in
            name = before.group(1)
            if self._keyed(name.lower(), value, m.start("s")):
                continue
            key = _snake(name)
            if not _KEYWORD.search(key) and not _KEYWORD.search(key.replace("_", "")):
                continue
            start, end = m.start("s"), m.start("s") + len(value)
            telling = bool(_TELLING.search(key)) and not _NOT_TELLING.search(key)
            if telling and _AWS_SECRET_KEY.search(key) and _AWS_SECRET.fullmatch(value):
                if not looks_made_up(value) and entropy(value) > 4.0:
                    self.add("secret.aws-secret-key", value, start, end)
                continue
            if telling and _credential_value(value, password=bool(_PASSWORD_KEY.search(key))):
                self.add("secret.named-credential", value, start, end)
            elif _generic_value(value):
                self.add("secret.generic", value, start, end)


def _scan_window(text: str, lines_before: int, own: tuple[int, int], budget: int) -> list[Hit]:
    """Hits whose start lies in ``own``, numbered as lines of the whole file; then the
    same text with JSON/YAML string escapes decoded (``\\n``, ``\\/``, ``\\u002b``)."""
    scan = _Scan(text, lines_before, own, budget)
    scan.run()
    found = [h for _, h in scan.hits]
    if "\\" in text and len(found) < budget:
        seen = {(h.rule, h.secret) for h in found}
        starts: list[int] = []
        offsets: list[int] = []
        parts: list[str] = []
        size = 0
        for start, raw in _escaped_lines(text, own[0], own[1]):
            decoded = _unescape(raw)
            starts.append(start)
            offsets.append(size)
            parts.append(decoded)
            size += len(decoded) + 1
        if parts:  # every escaped line, decoded, scanned as one text
            joined = "\n".join(parts)
            sub = _Scan(joined, 0, (0, len(joined)), budget - len(found))
            sub.run()
            for at, h in sub.hits:
                line = lines_before + scan.lines.of(starts[bisect.bisect_right(offsets, at) - 1])
                if (h.rule, h.secret) not in seen and len(found) < budget:
                    seen.add((h.rule, h.secret))
                    found.append(Hit(h.rule, line, h.secret, h.label, h.shown))
    return found


def scan_text(text: str) -> list[Hit]:
    """Every likely secret in ``text`` with its 1-based line; overlapping hits reported once."""
    return sorted(_scan_window(text, 0, (0, len(text)), MAX_HITS_PER_FILE), key=lambda h: (h.line, h.rule))


# --- bytes: decoding, binaries, windows ----------------------------------------------------

# Compressed or media formats: no readable text inside, skipped by their first bytes.
_MEDIA_MAGIC = (
    b"\x89PNG",
    b"\xff\xd8\xff",
    b"GIF87a",
    b"GIF89a",
    b"RIFF",
    b"PK\x03\x04",
    b"PK\x05\x06",
    b"PK\x07\x08",
    b"\x1f\x8b",
    b"BZh",
    b"\xfd7zXZ\x00",
    b"7z\xbc\xaf\x27\x1c",
    b"\x28\xb5\x2f\xfd",
    b"ID3",
    b"OggS",
    b"fLaC",
    b"wOFF",
    b"wOF2",
    b"\x00\x00\x01\x00",
    b"II*\x00",
    b"MM\x00*",
    b"Rar!",
    b"\x00asm",
    b"%PDF",
)
# Printable ASCII plus tab and newline stays; every other byte becomes a space, so
# line numbers (newlines) survive and tokens break where the binary data is.
_PRINTABLE = bytes(b if (32 <= b < 127 or b in (9, 10)) else 32 for b in range(256))


def _is_media(data: bytes) -> bool:
    head = data[:16]
    return head.startswith(_MEDIA_MAGIC) or head[4:8] == b"ftyp"


def _encoding(data: bytes) -> str | None:
    """How to read ``data``: a codec name, 'binary' (printable runs), or None (skip)."""
    if data.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if data.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        return "utf-32"
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    if _is_media(data):
        return None
    head = data[:BINARY_SNIFF_BYTES]
    if b"\0" not in head:
        return "utf-8"
    sample = head[:4096]
    even, odd = sample[0::2], sample[1::2]
    if odd and odd.count(0) >= 0.7 * len(odd) and even.count(0) <= 0.1 * len(even):
        return "utf-16-le"
    if even and even.count(0) >= 0.7 * len(even) and odd.count(0) <= 0.1 * len(odd):
        return "utf-16-be"
    return "binary"


def is_binary(data: bytes) -> bool:
    """True when the bytes are not text in any encoding this scanner decodes."""
    return _encoding(data) in (None, "binary")


def _pieces(data: bytes, encoding: str) -> Iterator[str]:
    step = WINDOW_CHARS
    if encoding == "binary":
        for i in range(0, len(data), step):
            yield data[i : i + step].translate(_PRINTABLE).decode("latin-1")
        return
    decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
    for i in range(0, len(data), step):
        piece = decoder.decode(data[i : i + step], final=i + step >= len(data))
        if piece:
            yield piece


def scan_bytes(data: bytes) -> Iterator[Hit]:
    """Every file up to the caller's cap: text in any common encoding, binaries for their
    printable runs, media skipped; 1 MiB windows with overlapping context."""
    encoding = _encoding(data)
    if encoding is None:
        return
    pieces = _pieces(data, encoding)
    current = next(pieces, None)
    tail = ""  # context before the current piece
    lines_done = 0  # newlines before the current piece
    budget = MAX_HITS_PER_FILE
    while current is not None and budget > 0:
        following = next(pieces, None)
        window = tail + current + (following[:CONTEXT_CHARS] if following else "")
        own = (len(tail), len(tail) + len(current))
        hits = _scan_window(window, lines_done - tail.count("\n"), own, budget)
        budget -= len(hits)
        yield from sorted(hits, key=lambda h: (h.line, h.rule))
        lines_done += current.count("\n")
        tail = (tail + current)[-CONTEXT_CHARS:]
        current = following


def allowed(hit: Hit, allow: AllowList, path: str) -> str | None:
    return allow.match(hit, path)


def rule_ids() -> tuple[str, ...]:
    return tuple(dict.fromkeys(r.id for r in SECRET_RULES))


ScanFn = Callable[[bytes], Iterator[Hit]]

__all__ = [
    "ALLOWLIST_FILE",
    "AllowList",
    "Hit",
    "allowed",
    "fingerprint",
    "fingerprint_key",
    "legacy_digest",
    "normalise_allowed",
    "parse_allowlist",
    "scan_bytes",
    "scan_text",
]
