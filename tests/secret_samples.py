"""A value for every rule of the secret table, generated from the rule's own description,
and the placements a skill may hold it in.

Token and keyed rules are generated from their format segments (the same segments the
scanner's regex is derived from); each structural rule has a generator written from the
format its row describes (a PEM block, an AWS pair, a JWT with the claims the rule names,
a Docker ``config.json``, a URL with a password, an ``Authorization`` header, a random
value under a telling name). Values come from a seeded ``random.Random``, so they are as
random as a provider's and no literal in the repository looks live.

A placement turns one sample into the files of a skill: text in several encodings, a real
SQLite ``settings(key TEXT, value TEXT)`` table (which stores a name and its value back to
back), and a string split over two lines where the language joins it (Python's adjacent
literals, JavaScript's ``+``, a shell ``\\`` continuation).
"""

from __future__ import annotations

import base64
import json
import random
import sqlite3
import string
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from skillsyncd.validation.secret_rules import KEYED_RULES, STRUCTURAL_RULES, TOKEN_RULES
from skillsyncd.validation.secrets.formats import Format, SecretRule, expand
from skillsyncd.validation.secrets.values import stand_in_text

AN = string.ascii_letters + string.digits
SKILL_MD = "---\nname: demo\ndescription: Calls an API.\nmetadata:\n  version: '1'\n---\n\n# Demo\n"


@dataclass(frozen=True)
class Sample:
    """One credential: the rule it must trip, and how a skill writes it down.

    ``name`` and ``value`` are what a settings table stores (``value`` may span lines);
    ``sep`` joins them in a text file; ``before`` are rows that must come first (an AWS
    key id before its secret); ``secret`` is the part no output may echo."""

    rule: str
    name: str
    value: str
    sep: str = "="
    before: tuple[tuple[str, str], ...] = ()
    secret: str = ""

    @property
    def rows(self) -> tuple[tuple[str, str], ...]:
        return (*self.before, (self.name, self.value))

    @property
    def hidden(self) -> str:
        return self.secret or self.value


def value_of(fmt: Format, rng: random.Random) -> str:
    """A value in ``fmt``: literals as written, each run of its length range.

    A draw whose random part spells a placeholder mark (``xxxx``, ``here``, ``fake``) is
    drawn again: the gate reads such a value as a documentation stand-in by design
    (docs/validation.md), so it is not a credential sample (seen: a Mapbox token with
    ``xxxx`` in it, about one draw in 10^4)."""
    while True:
        out = []
        for seg in fmt:
            if isinstance(seg, str):
                out.append(seg)
            else:
                alphabet, lo, hi = seg
                chars = expand(alphabet)
                out.append("".join(rng.choice(chars) for _ in range(rng.randint(lo, min(hi, lo + 40)))))
        value = "".join(out)
        if not stand_in_text(value) or stand_in_text("".join(s for s in fmt if isinstance(s, str))):
            return value


def name_for(rule: SecretRule) -> str:
    """The name people give it: the provider's word for keyed rules (which need it)."""
    if rule.kind == "keyed":
        return rule.keywords[0].strip("_-").upper().replace("-", "_") + "_API_KEY"
    return rule.id.removeprefix("secret.").split("-")[0].upper() + "_TOKEN"


def _rand(rng: random.Random, n: int, alphabet: str = AN) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def _b64url(obj: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def _pem_lines(kind: str, der: bytes) -> str:
    body = base64.b64encode(der).decode()
    lines = "\n".join(body[i : i + 64] for i in range(0, len(body), 64))
    return f"-----BEGIN {kind}-----\n{lines}\n-----END {kind}-----\n"


def private_key_pem(rng: random.Random) -> str:
    """A real key (seeded): ed25519 or P-256, in PKCS#8, traditional, OpenSSH or encrypted
    PKCS#8 armour; or a PGP block (random body: no OpenPGP library here)."""
    choice = rng.randrange(6)
    if choice == 5:
        return _pem_lines("PGP PRIVATE KEY BLOCK", rng.randbytes(rng.randint(300, 900)))
    key: ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey
    if choice in (0, 1):
        key = ed25519.Ed25519PrivateKey.from_private_bytes(rng.randbytes(32))
    else:
        key = ec.derive_private_key(rng.randrange(1, 2**255), ec.SECP256R1())
    enc: serialization.KeySerializationEncryption = serialization.NoEncryption()
    fmt = serialization.PrivateFormat.PKCS8
    if choice in (1, 3):
        fmt = serialization.PrivateFormat.OpenSSH
    elif choice == 2:
        fmt = serialization.PrivateFormat.TraditionalOpenSSL
    elif choice == 4:
        enc = serialization.BestAvailableEncryption(_rand(rng, 16).encode())
    return key.private_bytes(serialization.Encoding.PEM, fmt, enc).decode()


def _jwt(rng: random.Random, payload: dict[str, object]) -> str:
    header = _b64url({"alg": "HS256", "typ": "JWT"})
    return f"{header}.{_b64url(payload)}.{_rand(rng, 43, AN + '_-')}"


def _password(rng: random.Random) -> str:
    return _rand(rng, rng.randint(14, 24), AN + "!%^*_")


def _structural(rule_id: str, rng: random.Random) -> Sample:
    t = 1_700_000_000 + rng.randrange(10**7)
    if rule_id == "secret.private-key":
        return Sample(rule_id, "PRIVATE_KEY", private_key_pem(rng))
    if rule_id in ("secret.aws-secret-key", "secret.aws-access-key-id"):
        key_id = rng.choice(("AKIA", "ASIA")) + _rand(rng, 16, string.ascii_uppercase + "234567")
        if rule_id == "secret.aws-access-key-id":
            return Sample(rule_id, "AWS_ACCESS_KEY_ID", key_id)
        secret = _rand(rng, 40, AN + "/+")
        return Sample(rule_id, "AWS_SECRET_ACCESS_KEY", secret, before=(("AWS_ACCESS_KEY_ID", key_id),))
    if rule_id.startswith("secret.jwt"):
        sub = f"{rng.getrandbits(128):032x}"
        payload: dict[str, object] = {
            "secret.jwt": {"sub": sub, "iat": t, "exp": t + 3600},
            "secret.jwt-service-role": {"iss": "supabase", "ref": _rand(rng, 20, string.ascii_lowercase),
                                        "role": "service_role", "iat": t, "exp": t + 3600},
            "secret.jwt-long-lived": {"sub": sub, "iat": t, "exp": t + 90 * 86_400},
        }[rule_id]
        return Sample(rule_id, "SESSION_JWT", _jwt(rng, payload))
    if rule_id == "secret.registry-auth":
        login = base64.b64encode(f"deploy-{_rand(rng, 4)}:{_password(rng)}".encode()).decode()
        config = json.dumps({"auths": {"ghcr.io": {"auth": login}}})
        return Sample(rule_id, "DOCKER_CONFIG", config, sep=": ", secret=login)
    if rule_id == "secret.url-credential":
        pw = _password(rng)
        scheme = rng.choice(("postgresql", "mongodb+srv", "redis", "amqps", "https", "mysql"))
        user = "svc_" + _rand(rng, 5, string.ascii_lowercase)
        url = f"{scheme}://{user}:{pw}@db{rng.randint(1, 9)}.corp.net/main"
        return Sample(rule_id, "DATABASE_URL", url, secret=pw)
    if rule_id == "secret.http-authorization":
        token = _rand(rng, 40, AN + "-._")
        return Sample(rule_id, "Authorization", f"Bearer {token}", sep=": ", secret=token)
    if rule_id == "secret.named-credential":
        names = ("CLIENT_SECRET", "DB_PASSWORD", "SERVICE_API_KEY", "WEBHOOK_SECRET", "ACCESS_TOKEN")
        name = rng.choice(names)
        return Sample(rule_id, name, _rand(rng, 32))
    if rule_id == "secret.generic":
        return Sample(rule_id, "token_cache_seed", _rand(rng, 32))
    raise KeyError(f"{rule_id}: a structural rule without a generator; add one to tests/secret_samples.py")


FORMAT_RULES: tuple[SecretRule, ...] = (*TOKEN_RULES, *KEYED_RULES)
RULE_IDS: tuple[str, ...] = tuple(dict.fromkeys(r.id for r in (*FORMAT_RULES, *STRUCTURAL_RULES)))


def samples(rule_id: str, rng: random.Random) -> list[Sample]:
    """One sample per format of every row with this id (one for a structural rule)."""
    rows = [r for r in FORMAT_RULES if r.id == rule_id]
    out = [Sample(r.id, name_for(r), value_of(f, rng)) for r in rows for f in r.formats]
    if any(r.id == rule_id for r in STRUCTURAL_RULES):
        out.append(_structural(rule_id, rng))
    return out


# --- placements ---------------------------------------------------------------------------

Files = dict[str, str | bytes]


def text_of(s: Sample) -> str:
    """The sample as a text file writes it: ``NAME=value`` lines, a PEM block as itself."""
    return "".join(v + "\n" if "\n" in v else f"{n}{s.sep if n == s.name else '='}{v}\n" for n, v in s.rows)


def sqlite_settings(rows: tuple[tuple[str, str], ...]) -> bytes:
    """A real SQLite file with ``settings(key TEXT, value TEXT)``: each row's key and value
    are stored back to back (``GITHUB_TOKENghp_…``)."""
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "app.db"
        db = sqlite3.connect(path)
        db.execute("CREATE TABLE settings (key TEXT, value TEXT)")
        db.executemany("INSERT INTO settings VALUES (?, ?)", [("theme", "dark"), *rows, ("lang", "en")])
        db.commit()
        db.close()
        return path.read_bytes()


def _halves(value: str, at: float) -> tuple[str, str]:
    cut = max(1, min(len(value) - 1, int(len(value) * at)))
    return value[:cut], value[cut:]


def _parts(value: str, at: float) -> list[str]:
    """The string literals (quotes escaped) that hold ``value`` split in two, or one per
    line ending in ``\\n`` for a multi-line value."""
    if "\n" in value:
        return [json.dumps(line + "\n")[1:-1] for line in value.rstrip("\n").split("\n")]
    return [json.dumps(p)[1:-1] for p in _halves(value, at)]


def python_split(s: Sample, at: float) -> str:
    """``NAME = (\\n    "first"\\n    "second"\\n)``: Python joins adjacent literals."""
    head = "".join(f"{n} = {json.dumps(v)}\n" for n, v in s.before)
    parts = _parts(s.value, at)
    body = "".join(f'    "{p}"\n' for p in parts)
    return f"{head}{s.name} = (\n{body})\n"


def js_split(s: Sample, at: float) -> str:
    """``const NAME = "first" +\\n  "second";``: JavaScript's ``+``."""
    head = "".join(f"const {n} = {json.dumps(v)};\n" for n, v in s.before)
    parts = _parts(s.value, at)
    joined = " +\n  ".join(f'"{p}"' for p in parts)
    return f"{head}const {s.name} = {joined};\n"


def shell_continued(s: Sample, at: float) -> str:
    """``export NAME="first\\`` then ``second"``: a ``\\`` newline inside a double-quoted
    shell string joins the lines; a multi-line value is written as it is."""
    head = "".join(f"export {n}='{v}'\n" for n, v in s.before)
    if "\n" in s.value:
        return f"{head}cat > key <<'EOF'\n{s.value.rstrip()}\nEOF\n"
    first, second = _halves(s.value.replace('"', '\\"'), at)
    return f'{head}export {s.name}="{first}\\\n{second}"\n'


def placements(s: Sample, at: float = 0.5) -> dict[str, Files]:
    """Every placement of one sample; ``at`` is where a split string is cut (0-1)."""
    text = text_of(s)
    latin = "# configuración: valeurs à changer\n" + text
    out: dict[str, Files] = {
        "utf-8": {"config/settings.env": text},
        "utf-8-bom": {"config/settings.env": text.encode("utf-8-sig")},
        "utf-16": {"scripts/setup.ps1": text.replace("\n", "\r\n").encode("utf-16")},
        "utf-16-le": {"scripts/setup.ps1": text.replace("\n", "\r\n").encode("utf-16-le")},
        "utf-32": {"config/settings.env": text.encode("utf-32")},
        "latin-1": {"config/settings.env": latin.encode("latin-1")},
        "skill-md": {"SKILL.md": SKILL_MD + "\n```\n" + text + "```\n"},
        "sqlite-glued": {"data/app.db": sqlite_settings(s.rows)},
        "python-split": {"scripts/client.py": python_split(s, at)},
        "js-split": {"scripts/client.js": js_split(s, at)},
        "shell-continued": {"scripts/setup.sh": shell_continued(s, at)},
    }
    return out


