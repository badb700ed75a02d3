"""What is not a secret, and what a credential's value looks like.

What is not a secret stays silent: placeholders (``YOUR_API_KEY``, ``sk-...``,
``xxxx``, ``your-api-key-here``), documented example keys (``AKIAIOSFODNN7EXAMPLE``),
patterned fakes (``A1B2C3…``, ``abcabc…``), hashes and UUIDs under names that are not
credentials, public keys and public addresses (``0x`` + 40 hex), code (``process.env.X``,
``OnBehalfOfCredential(…)``, ``os.environ["X"]``, ``$X``) and words joined into a value
(``break-in-recovery``, ``response_ms``).
"""

from __future__ import annotations

import math
import re

_PLACEHOLDER = re.compile(
    r"x{4,}|X{4,}|\*{3,}|\.{3}|…|0{8,}|1234567|abcdef(?:gh|12)|your|example|sample|placeholder"
    r"|replace|dummy|fake|redacted|insert|changeme|<|>|\{|\}|\$\{|(?-i:\$[A-Z_]{3})"
    r"|(?<![a-z])here(?![a-z])|paste|notreal|not[_-]a[_-]real|(?<![A-Za-z0-9])(?-i:TODO|TBD)(?![A-Za-z0-9])",
    re.IGNORECASE,
)
# Published example values that would otherwise look random.
KNOWN_EXAMPLES = frozenset(
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
        or token in KNOWN_EXAMPLES
        or patterned(token)
    )


def stand_in_text(text: str) -> bool:
    """Placeholder words or marks anywhere in ``text`` (``<project>``, ``example``, ``xxxx``)."""
    return bool(_PLACEHOLDER.search(text))


def entropy(token: str) -> float:
    counts: dict[str, int] = {}
    for ch in token:
        counts[ch] = counts.get(ch, 0) + 1
    n = len(token)
    return -sum(c / n * math.log2(c / n) for c in counts.values()) if n else 0.0


def classes(s: str) -> int:
    return (
        bool(re.search(r"[a-z]", s))
        + bool(re.search(r"[A-Z]", s))
        + bool(re.search(r"\d", s))
        + bool(re.search(r"[^A-Za-z0-9]", s))
    )


def _mixed(s: str) -> bool:
    return bool(re.search(r"[a-z]", s)) + bool(re.search(r"[A-Z]", s)) + bool(re.search(r"\d", s)) >= 2


_DOTTED_NAME = re.compile(r"[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)+(?:\(\)?)?")
_WORD_PARTS = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+|[^A-Za-z0-9]")
_VOWELS = frozenset("aeiouy")
_CONSONANT_RUN = re.compile(r"[^aeiouy]{5,}")


def identifier_like(value: str) -> bool:
    """Code, not data: ``process.env.TOKEN``, ``GITHUB_TOKEN``, ``getApiKeyFromVault``."""
    if re.fullmatch(r"_*[A-Z][A-Z0-9_]*", value):
        return True
    if _DOTTED_NAME.fullmatch(value):  # each part a name, not random characters around a dot
        parts = value.rstrip("()").split(".")
        return all(identifier_like(p) or wordy(p) or len(p) <= 3 for p in parts)
    if re.search(r"\d", value):
        return False
    words = [w for w in _WORD_PARTS.findall(value) if w.isalnum()]
    return bool(words) and all(len(w) >= 3 for w in words)


def _word(part: str) -> bool:
    """A part a person would type: 2-15 letters with vowels where a word has them."""
    w = part.lower()
    if not (2 <= len(w) <= 15) or _CONSONANT_RUN.search(w):
        return False
    vowels = sum(ch in _VOWELS for ch in w)
    return vowels >= 1 and vowels >= 0.2 * len(w)


def wordy(value: str) -> bool:
    """Words joined into one value (``break-in-recovery``, ``OnBehalfOfCredential``,
    ``response_ms``, ``my-secret-token-2``): prose or a name, not generated data. A random
    string splits into single letters, consonant runs and digits in the middle."""
    parts = [p for p in _WORD_PARTS.findall(value) if p.isalnum()]
    if not parts or not parts[0].isalpha():
        return False
    if parts[-1].isdigit():
        if len(parts[-1]) > 4 and parts[-1] not in "1234567890":  # `my-api-key-12345` is typed
            return False
        parts = parts[:-1]
    if any(not p.isalpha() for p in parts):
        return False
    words = [p for p in parts if _word(p)]
    short = [p for p in parts if not _word(p)]
    return len(words) >= 1 and all(len(p) <= 3 for p in short) and len(short) <= max(1, len(words) // 2)


_WEAK_PASSWORD = re.compile(
    r"(?:password|passwd|pass|admin|secret|test|demo|user|root|qwerty|letmein|welcome|default|guest"
    r"|postgres|mysql|redis|mongo|neo4j|changeit|foo|bar|baz|hunter|login|local|dev)+"
    r"[0-9]{0,6}[!@#%^&*?.]{0,3}",
    re.IGNORECASE,
)

# Values that look like keys but are public or test-mode only.
NOT_SECRET_PREFIXES = (
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
_PUBLIC_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")  # an Ethereum-style account or contract address
_HEXV = re.compile(r"[0-9a-fA-F]+")
_UUIDV = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_ENV = re.compile(
    r"^\$|\$[{(]|\$[A-Z_][A-Z0-9_]|%[A-Za-z_]+%|\{\{|getenv|environ|process\.env|\bENV\["
)


# A whole look-up, removed to see what is left of the value.
_LOOKUP = re.compile(
    r"\$\{[^}]*\}|\$\([A-Za-z][^)]*\)|\$[A-Za-z_][A-Za-z0-9_]*|%[A-Za-z_]+%|\{\{.*?(?:\}\}|$)"
    r"|getenv|environ|process\.env|\bENV\["
)


def env_or_template(value: str) -> bool:
    """A look-up, not a value: ``$X``, ``${X}``, ``$(cmd)``, ``%X%``, ``{{ x }}``, ``os.getenv``.
    Look-up marks inside random characters (a Django key's ``$(``, ``%jo%``) are data: what
    is left without them is still 16+ random characters of three classes."""
    if not _ENV.search(value):
        return False
    rest = _LOOKUP.sub("", value)
    return not (len(rest) >= 16 and classes(rest) >= 3 and entropy(rest) >= 3.5)


def _not_data(value: str) -> bool:
    return (
        looks_made_up(value)
        or identifier_like(value)
        or wordy(value)
        or env_or_template(value)
        or value.startswith(NOT_SECRET_PREFIXES)
        or value.startswith(("/", "./", "~/", "http"))
        or value.lower() in ("true", "false", "null", "none", "undefined")
        or _PUBLIC_ADDRESS.fullmatch(value) is not None
    )


def credential_value(value: str, password: bool) -> bool:
    """A value that is data, random-looking and not a stand-in: what a named credential holds."""
    if _not_data(value):
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
            and classes(value) >= 2
            and entropy(value) >= 2.8
            and not _WEAK_PASSWORD.fullmatch(value)
            and not _typed_word(value)
        )
    return len(value) >= 16 and classes(value) >= 2 and entropy(value) >= 3.3


def generic_value(value: str) -> bool:
    """The looser test for a warning: a high-entropy mixed value of 20+ characters."""
    return (
        len(value) >= 20
        and not _not_data(value)
        and _mixed(value)
        and entropy(value) >= 3.5
        and not re.fullmatch(r"[a-z0-9_.\-]+", value)
        and "://" not in value
    )


def _typed_word(value: str) -> bool:
    """``Summer2024``, ``hunter``: letters and a few digits a person types; 16+ random
    letters that happen to end in a digit are not one."""
    if re.fullmatch(r"[A-Za-z]+\d{0,4}", value) is None:
        return False
    upper = sum(ch.isupper() for ch in value)
    return len(value) < 16 or (wordy(value) and upper <= len(value) // 4)


def url_password(user: str, password: str) -> bool:
    """A password in a URL or a Basic login that is not a documentation stand-in."""
    if (
        password == user
        or looks_made_up(password)
        or env_or_template(password)
        or _WEAK_PASSWORD.fullmatch(password)
        or _typed_word(password)
        or re.fullmatch(r"\d{1,5}", password)
    ):
        return False
    return len(password) >= 8 and (classes(password) >= 2 or len(password) >= 16) and entropy(password) >= 2.5
