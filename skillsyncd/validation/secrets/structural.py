"""Detectors that need code, not a format: private keys, AWS key pairs, JWTs, passwords
in URLs, authorization headers and registry logins. Each reads one window of text and
yields candidates in the order they should claim their spans."""

from __future__ import annotations

import base64
import binascii
import bisect
import json
import re
from collections.abc import Iterator

from skillsyncd.validation.secrets.compiled import Candidate
from skillsyncd.validation.secrets.values import (
    KNOWN_EXAMPLES,
    credential_value,
    entropy,
    looks_made_up,
    stand_in_text,
    url_password,
)

AWS_PAIR_LINES = 5
AWS_PAIR_CHARS = 1000
LONG_LIVED_SECONDS = 86_400  # a JWT usable for more than a day outlives any session it was made for

_B = r"(?<![A-Za-z0-9_\-])"  # left boundary: not inside a longer token
_E = r"(?![A-Za-z0-9_\-])"  # right boundary


# --- private keys ----------------------------------------------------------------------------

# PEM and OpenSSH (five dashes), and the SSH2 format of ssh.com and PuTTY (`---- BEGIN SSH2
# ENCRYPTED PRIVATE KEY ----`, four dashes and spaces).
_PEM = re.compile(r"-{4,5} ?BEGIN ((?:[A-Z0-9]+ )*)PRIVATE KEY( BLOCK)? ?-{4,5}")
_PEM_END = re.compile(r"-{4,5} ?END ")
_PPK = re.compile(r"Private-Lines:[ \t]*\d+")
_KEY_RUN = re.compile(r"[A-Za-z0-9+/=]{20,}")
_KEY_GAP = 24  # between two lines of key material: a newline, quotes, `\n`, ` +`, indentation
_STAND_IN = re.compile(r"\.\.\.|…|<[A-Za-z ]|x{4,}|X{4,}|\byour\b|paste|redacted", re.IGNORECASE)
_KEY_MIN = 40  # characters of key material: a PKCS#8 ed25519 key has 64, PuTTY's private line 44


def _key_body(text: str, start: int) -> tuple[str, int] | None:
    """The key material after an armour line at ``start``: lines of base64 that begin within
    a few hundred characters (headers such as ``Proc-Type:`` may come first) and follow each
    other closely, up to the END line. None for a stand-in (``...``, ``<your key>``)."""
    end = _PEM_END.search(text, start, start + 20_000)
    limit = end.start() if end is not None else min(len(text), start + 20_000)
    region = text[start:limit].replace("\\n", "\n")  # the same body whether or not `\n` is decoded
    pieces: list[str] = []
    last = None
    for m in _KEY_RUN.finditer(region):
        if last is None and m.start() > 400:
            return None
        if last is not None and m.start() - last > _KEY_GAP:
            break
        pieces.append(m.group())
        last = m.end()
    if last is None:
        return None
    body = "".join(pieces)
    if len(body) < _KEY_MIN or len(set(body)) < 16 or _STAND_IN.search(region[:last]):
        return None
    return body, start + last


def private_keys(text: str) -> Iterator[Candidate]:
    """A private key block is a secret by its armour alone, whatever its body looks like:
    an unencrypted OpenSSH key's first line is the same low-entropy preamble for every key."""
    for m in _PEM.finditer(text):
        found = _key_body(text, m.end())
        if found is not None:
            yield Candidate("secret.private-key", found[0], m.start(), m.end(), "PEM")
    for m in _PPK.finditer(text):
        found = _key_body(text, m.end())
        if found is not None:
            yield Candidate("secret.private-key", found[0], m.start(), m.end(), "PPK")


# --- AWS -------------------------------------------------------------------------------------

_AWS_ID_BODY = r"(?:AKIA|ASIA|ABIA|ACCA|A3T[A-Z0-9])[A-Z0-9]{16}"
_AWS_ID = re.compile(r"(?<![A-Z0-9])" + _AWS_ID_BODY + r"(?![A-Z0-9])")
_AWS_ID_GLUED = re.compile(_AWS_ID_BODY)  # a binary's runs: right after its name
AWS_SECRET = re.compile(r"(?<![A-Za-z0-9/+=])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])")
AWS_NEEDLES = ("AKIA", "ASIA", "ABIA", "ACCA", "A3T")


def aws_secret_like(value: str) -> bool:
    return (
        re.search(r"[a-z]", value) is not None
        and re.search(r"[A-Z]", value) is not None
        and not looks_made_up(value)
        and entropy(value) > 4.0
    )


def aws_keys(text: str, glued: bool = False) -> Iterator[Candidate]:
    """A key id with a 40-character secret within a few lines is a pair (an error); a key
    id alone is a warning."""
    starts: list[int] | None = None
    for m in (_AWS_ID_GLUED if glued else _AWS_ID).finditer(text):
        key_id = m.group()
        if looks_made_up(key_id):
            continue
        if starts is None:
            starts = [0] + [x.end() for x in re.finditer("\n", text)]
        line = bisect.bisect_right(starts, m.start())
        lo = max(starts[max(0, line - 1 - AWS_PAIR_LINES)], m.start() - AWS_PAIR_CHARS)
        hi_line = min(len(starts), line + AWS_PAIR_LINES)
        hi = min(starts[hi_line] if hi_line < len(starts) else len(text), m.end() + AWS_PAIR_CHARS)
        pair = next((s for s in AWS_SECRET.finditer(text, lo, hi) if aws_secret_like(s.group())), None)
        if pair is not None:
            yield Candidate("secret.aws-secret-key", pair.group(), pair.start(), pair.end(),
                            covers=(m.start(), m.end()))
        else:
            yield Candidate("secret.aws-access-key-id", key_id, m.start(), m.end(), key_id[:4])


# --- JWTs ------------------------------------------------------------------------------------

_JWT_BODY = r"(eyJ[A-Za-z0-9_\-]{8,})\.(eyJ[A-Za-z0-9_\-]{8,})\.([A-Za-z0-9_\-]{16,})"
_JWT = re.compile(_B + _JWT_BODY + _E)
_JWT_GLUED = re.compile(_JWT_BODY)  # a binary's runs: right after its name
JWT_NEEDLE = "eyJ"
_PRIVILEGED = frozenset({"service_role", "supabase_admin", "admin", "superuser", "root", "owner", "service"})
_ROLE_CLAIMS = ("role", "roles", "x-hasura-default-role", "https://hasura.io/jwt/claims", "realm_access")


def b64json(part: str) -> object:
    try:
        raw = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
        return json.loads(raw)
    except (binascii.Error, ValueError):
        return None


def _roles(payload: dict[str, object]) -> set[str]:
    out: set[str] = set()
    for claim in _ROLE_CLAIMS:
        value = payload.get(claim)
        items = value.values() if isinstance(value, dict) else [value]
        for item in items:
            for v in item if isinstance(item, list) else [item]:
                if isinstance(v, str):
                    out.add(v.lower())
    return out


def _sample(payload: dict[str, object]) -> bool:
    """jwt.io's and the docs' payloads: ``"sub": "1234567890"``, ``John Doe``, ``example``."""
    values = " ".join(v for v in payload.values() if isinstance(v, str))
    return stand_in_text(values) or "john doe" in values.lower() or "jane doe" in values.lower()


def jwt_rule(payload: object) -> str:
    """Which JWT rule a payload earns: a privileged role or a long life is an error."""
    if not isinstance(payload, dict):
        return "secret.jwt"
    roles = _roles(payload)
    if roles & _PRIVILEGED:
        return "secret.jwt-service-role"
    if "anon" in roles or _sample(payload):
        return "secret.jwt"  # a public client key by design, or a documented sample
    exp, iat = payload.get("exp"), payload.get("iat", payload.get("nbf"))
    if isinstance(exp, int | float) and isinstance(iat, int | float) and exp - iat > LONG_LIVED_SECONDS:
        return "secret.jwt-long-lived"
    return "secret.jwt"


def jwts(text: str, glued: bool = False) -> Iterator[Candidate]:
    for m in (_JWT_GLUED if glued else _JWT).finditer(text):
        header = b64json(m.group(1))
        if isinstance(header, dict) and "alg" in header and m.group(3) not in KNOWN_EXAMPLES:
            yield Candidate(jwt_rule(b64json(m.group(2))), m.group(), m.start(), m.end(), "eyJ")


# --- URLs, headers, registry logins ------------------------------------------------------------

_URL_CRED = re.compile(  # from '://' (a literal the engine can jump to), the scheme does not matter
    r"://(?P<user>[^\s:/@'\"`<>()\[\]{}]{0,100}):(?P<s>[^\s/@'\"`<>\[\]{}]{3,200})@(?=[A-Za-z0-9\[])"
)
URL_NEEDLE = "://"
_AUTH_TAIL = (
    r"[ \t]{0,4}[\"']?(?P<scheme>(?i:bearer|token|basic))[ \t]+"
    r"(?P<s>[A-Za-z0-9_\-.~+/=]{16,600})(?![A-Za-z0-9_\-.~+/=])"
)
_AUTH_HEADER = re.compile(r"(?i:authorization)[\"']?[ \t]{0,4}[:=,]" + _AUTH_TAIL)
# a binary's runs: a headers table stores the name and the value back to back
_AUTH_HEADER_GLUED = re.compile(r"(?i:authorization)[\"']?[ \t]{0,4}[:=,]?" + _AUTH_TAIL)
AUTH_NEEDLES = ("uthorization", "UTHORIZATION")  # 'Authorization' and 'authorization'
_REGISTRY_AUTH = re.compile(
    r"(?<![\w-])[\"']?(?P<k>auth|identitytoken|registrytoken)[\"']?[ \t]*[:=][ \t]*[\"']?"
    r"(?P<s>[A-Za-z0-9+/_\-.=]{12,4000})(?![A-Za-z0-9+/_\-.=])",
    re.IGNORECASE,
)
REGISTRY_NEEDLES = ("auth", "Auth", "AUTH", "identitytoken", "registrytoken", "eyJhdXRocyI6")
_DOCKERCONFIG = re.compile(r"eyJhdXRocyI6[A-Za-z0-9+/=]{20,20000}")  # base64 of '{"auths":'


def basic_login(value: str) -> bool:
    """base64 of ``user:password`` with a password that is not a stand-in."""
    try:
        decoded = base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return False
    user, sep, password = decoded.partition(":")
    return bool(sep) and url_password(user, password)


def url_credentials(text: str) -> Iterator[Candidate]:
    for m in _URL_CRED.finditer(text):
        if url_password(m.group("user"), m.group("s")):
            yield Candidate("secret.url-credential", m.group("s"), m.start("s"), m.end("s"))


def auth_headers(text: str, glued: bool = False) -> Iterator[Candidate]:
    for m in (_AUTH_HEADER_GLUED if glued else _AUTH_HEADER).finditer(text):
        value = m.group("s")
        if m.group("scheme").lower() == "basic":
            if not basic_login(value):
                continue
        elif not credential_value(value, password=False):
            continue
        yield Candidate("secret.http-authorization", value, m.start("s"), m.end("s"))


def _registry_values(text: str, offset: int) -> Iterator[Candidate]:
    for m in _REGISTRY_AUTH.finditer(text):
        value = m.group("s")
        login = m.group("k").lower() == "auth"
        if basic_login(value) if login else credential_value(value, password=False):
            yield Candidate("secret.registry-auth", value, offset + m.start("s"), offset + m.end("s"))


def registry_auth(text: str) -> Iterator[Candidate]:
    """Docker's ``config.json``: ``"auths": {"<registry>": {"auth": "<base64 user:password>"}}``,
    also as the base64 ``.dockerconfigjson`` of a Kubernetes secret."""
    yield from _registry_values(text, 0)
    for m in _DOCKERCONFIG.finditer(text):
        try:
            inner = base64.b64decode(m.group() + "=" * (-len(m.group()) % 4)).decode("utf-8")
        except (binascii.Error, ValueError):
            continue
        for c in _registry_values(inner, 0):
            yield Candidate(c.rule, c.secret, m.start(), m.end())
