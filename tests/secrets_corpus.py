"""A credential corpus and a harmless corpus, generated at test time from the rule table.

Positives: for every format of every token and keyed rule, a synthetic value in the
provider's format (seeded RNG; never a real secret), plus private keys, AWS pairs,
credentials in URLs, authorization headers and values under telling names; each placed
the ways skills hold them (SKILL.md body, frontmatter, code fence, shell, Python, JSON
with escaped slashes, YAML, .env, 7 folders deep, CRLF, a 1.1 MB file, a SQLite file,
UTF-16 PowerShell). Negatives: placeholders, documented example keys, patterned fakes,
hashes, UUIDs, public keys, environment look-ups, lockfiles, images, git SHAs, and the
realistic skills under tests/corpus and examples/skills.

Values are assembled here at run time, so the repository holds no literal that looks
like a live credential.
"""

from __future__ import annotations

import base64
import json
import random
import sqlite3
import string
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from secret_samples import value_of

from skillsyncd.validation.secret_rules import KEYED_RULES, TOKEN_RULES
from skillsyncd.validation.secrets.formats import SecretRule

ROOT = Path(__file__).resolve().parent.parent
SKILL_HEAD = "---\nname: demo\ndescription: Calls an API.\nmetadata:\n  version: '1'\n---\n"




def env_name(rule: SecretRule) -> str:
    """A name the way people write it: the provider keyword for keyed rules."""
    if rule.kind == "keyed":
        word = rule.keywords[0].strip("_-").upper().replace("-", "_")
        return f"{word}_API_KEY"
    return rule.id.removeprefix("secret.").split("-")[0].upper() + "_TOKEN"


@dataclass(frozen=True)
class Credential:
    rule: str  # the rule expected to fire (for per-rule tests)
    name: str  # the variable it is assigned to
    value: str
    multiline: bool = False


def pem(rng: random.Random, kind: str = "RSA") -> str:
    body = base64.b64encode(bytes(rng.randrange(256) for _ in range(600))).decode()
    lines = "\n".join(body[i : i + 64] for i in range(0, len(body), 64))
    label = f"{kind} PRIVATE KEY".strip()
    return f"-----BEGIN {label}-----\n{lines}\n-----END {label}-----"


def password(rng: random.Random, n: int = 18) -> str:
    return "".join(rng.choice(string.ascii_letters + string.digits + "!#%^*_-") for _ in range(n)).strip("-")


def credentials(seed: int = 13) -> list[Credential]:
    """One credential per format of every token and keyed rule, then the structural kinds."""
    rng = random.Random(seed)
    out = []
    for rule in (*TOKEN_RULES, *KEYED_RULES):
        for fmt in rule.formats:
            out.append(Credential(rule.id, env_name(rule), value_of(fmt, rng)))
    an = string.ascii_letters + string.digits
    for kind in ("RSA", "EC", "OPENSSH", "", "ENCRYPTED", "DSA"):
        out.append(Credential("secret.private-key", "PRIVATE_KEY", pem(rng, kind), multiline=True))
    for scheme, user in (
        ("postgresql", "app"),
        ("neo4j+s", "neo4j"),
        ("https", "deploy"),
        ("mongodb+srv", "svc"),
        ("redis", "default"),
        ("amqp", "worker"),
        ("mysql", "root"),
        ("ftp", "upload"),
    ):
        out.append(
            Credential(
                "secret.url-credential",
                "DATABASE_URL",
                f"{scheme}://{user}:{password(rng)}@db{rng.randint(1, 9)}.internal.corp:5432/main",
            )
        )
    for name in ("DB_PASSWORD", "CLIENT_SECRET", "SERVICE_API_KEY", "WEBHOOK_SECRET", "ACCESS_TOKEN"):
        for val in (
            "".join(rng.choice(an) for _ in range(32)),
            f"{rng.getrandbits(128):032x}",
            f"{rng.getrandbits(32):08x}-{rng.getrandbits(16):04x}-4{rng.getrandbits(12):03x}-a{rng.getrandbits(12):03x}-{rng.getrandbits(48):012x}",
        ):
            out.append(Credential("secret.named-credential", name, val))
    out.append(
        Credential(
            "secret.aws-secret-key",
            "AWS_SECRET_ACCESS_KEY",
            "".join(rng.choice(an + "/+") for _ in range(40)),
        )
    )
    return out


# --- placements: where a credential sits in a skill --------------------------------------

Files = dict[str, str | bytes]


def _assign(c: Credential) -> str:
    return f"{c.name}={c.value}"


def _pem_or(c: Credential, single: Callable[[Credential], str], multi: Callable[[Credential], str]) -> str:
    return multi(c) if c.multiline else single(c)


def _sqlite(text: str) -> bytes:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "cache.db"
        db = sqlite3.connect(path)
        db.execute("CREATE TABLE settings (id INTEGER PRIMARY KEY, line TEXT)")
        db.executemany("INSERT INTO settings (line) VALUES (?)", [("theme=dark",), (text,), ("lang=en",)])
        db.commit()
        db.close()
        return path.read_bytes()


FILLER = (
    "Skills describe a task step by step, with the scripts and references it needs. "
    "Nothing in this paragraph is a credential; it only makes the file large.\n"
)


def placements(c: Credential, big: bool = True) -> Iterator[tuple[str, Files]]:
    a = _assign(c)
    quoted = json.dumps(c.value)
    yield (
        "skill-body",
        {
            "SKILL.md": SKILL_HEAD + f"\n# Demo\n\nConfigure it with {a} before running.\n"
            if not c.multiline
            else SKILL_HEAD + f"\nThe key:\n\n{c.value}\n"
        },
    )
    yield (
        "frontmatter",
        {"SKILL.md": SKILL_HEAD.replace("metadata:", f"env:\n  {c.name}: {quoted}\nmetadata:")},
    )
    yield "code-fence", {"SKILL.md": SKILL_HEAD + f'\n```bash\nexport {c.name}="{c.value}"\n```\n'}
    yield (
        "shell",
        {
            "scripts/setup.sh": _pem_or(
                c,
                lambda c: f"#!/bin/sh\nexport {c.name}='{c.value}'\ncurl -s https://api.example.com\n",
                lambda c: f"#!/bin/sh\ncat > key.pem <<'EOF'\n{c.value}\nEOF\n",
            )
        },
    )
    yield (
        "python",
        {
            "scripts/client.py": _pem_or(
                c,
                lambda c: f'import requests\n\n{c.name} = "{c.value}"\n',
                lambda c: "KEY = (\n" + "".join(f'    "{ln}\\n"\n' for ln in c.value.splitlines()) + ")\n",
            )
        },
    )
    yield "json", {"config.json": json.dumps({"service": {c.name: c.value}}, indent=2).replace("/", "\\/")}
    yield (
        "yaml",
        {
            "config.yaml": _pem_or(
                c,
                lambda c: f"service:\n  {c.name}: {c.value}\n",
                lambda c: "service:\n  key: |\n" + "".join(f"    {ln}\n" for ln in c.value.splitlines()),
            )
        },
    )
    yield "dotenv", {".env": f"# local settings\n{a}\n" if not c.multiline else f'KEY="{c.value}"\n'}
    yield "deep", {"a/b/c/d/e/f/g/notes.md": f"Notes\n\n{a}\n"}
    yield "crlf", {"references/setup.txt": ("Setup\n\n" + a + "\nDone\n").replace("\n", "\r\n")}
    if big:
        yield "large", {"references/big.md": FILLER * (1_150_000 // len(FILLER)) + a + "\n"}
    yield "sqlite", {"data/cache.db": _sqlite(a)}
    yield (
        "utf16",
        {
            "scripts/setup.ps1": (f"# PowerShell\r\n$env:{c.name} = '{c.value}'\r\n").encode("utf-16")
            if not c.multiline
            else c.value.encode("utf-16")
        },
    )


# --- the harmless corpus ----------------------------------------------------------------


def _harmless_snippets(rng: random.Random) -> list[str]:
    hexs = f"{rng.getrandbits(160):040x}"
    uuid = (f"{rng.getrandbits(32):08x}-{rng.getrandbits(16):04x}-4{rng.getrandbits(12):03x}"
            f"-8{rng.getrandbits(12):03x}-{rng.getrandbits(48):012x}")
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(rng.randrange(256) for _ in range(300))).decode()
    integrity = base64.b64encode(bytes(rng.randrange(256) for _ in range(64))).decode()
    pub = base64.b64encode(bytes(rng.randrange(256) for _ in range(270))).decode()
    return [
        "curl -H 'x-api-key: YOUR_API_KEY' https://api.anthropic.com/v1/messages",
        'export ANTHROPIC_API_KEY="sk-ant-..."',
        "Set `OPENAI_API_KEY` to your key (it starts with `sk-proj-`).",
        'api_key = os.environ["OPENAI_API_KEY"]',
        "const token = process.env.GITHUB_TOKEN;",
        'var key = Environment.GetEnvironmentVariable("AZURE_OPENAI_KEY");',
        "token = os.getenv('SLACK_BOT_TOKEN')",
        "password: ${DB_PASSWORD}",
        "GITHUB_TOKEN=$GITHUB_TOKEN gh pr create",
        'headers = {"Authorization": f"Bearer {api_key}"}',
        'curl -H "Authorization: Bearer $TOKEN" https://api.github.com/user',
        "aws_access_key_id = AKIAIOSFODNN7EXAMPLE",
        "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "GOOGLE_API_KEY=AI" + "zaSyA1B2C3D4E5F6G7H8I9J0K1L2M3N4O5P6Q",
        "STRIPE_KEY=sk_test_" + "4eC39HqLyjWDarjtT1zdp7dc",
        "publishable: pk_live_" + "".join(rng.choice(string.ascii_letters) for _ in range(24)),
        "DATABASE_URL=postgresql://postgres:postgres@localhost:5432/app",
        "REDIS_URL=redis://:password@localhost:6379/0",
        "mongodb+srv://<username>:<password>@cluster0.example.mongodb.net/",
        "https://user:${GITHUB_TOKEN}@github.com/org/repo.git",
        f"commit {hexs}",
        f'"resolved": "https://registry.npmjs.org/x/-/x-1.0.0.tgz", "integrity": "sha512-{integrity}"',
        f"sha256: {f'{rng.getrandbits(256):064x}'}",
        f"request_id: {uuid}",
        f'id = "{uuid}"',
        f"![logo](data:image/png;base64,{png})",
        f"-----BEGIN PUBLIC KEY-----\n{pub[:64]}\n{pub[64:128]}\n-----END PUBLIC KEY-----",
        f"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA{pub[:43]} someone@laptop",
        "-----BEGIN RSA PRIVATE KEY-----\n<paste your key here>\n-----END RSA PRIVATE KEY-----",
        "SLACK_WEBHOOK_URL=https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
        "ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        "password: correct-horse-battery-staple",
        "token: ANTHROPIC_API_KEY_FROM_THE_ENVIRONMENT",
        "secret_name: projects/my-project/secrets/api-key/versions/latest",
        'client_secret: "<your-client-secret>"',
        "API_KEY=your-api-key-here",
        "jwt: eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
        "eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ"
        ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
        "The tokenizer splits text; the api_key_header option names the header to send.",
        'def get_secret(name: str) -> str:\n    return vault.read(f"secret/{name}")["data"]["value"]',
        f"cache_key: {f'{rng.getrandbits(128):032x}'}",
        f'checksum = "{f"{rng.getrandbits(256):064x}"}"',
        "version: 1.2.3\nname: demo-skill-for-testing",
        "x-request-id: " + uuid,
    ]


def harmless_skills(n: int = 300, seed: int = 7) -> Iterator[tuple[str, Files]]:
    rng = random.Random(seed)
    words = (
        "extract",
        "table",
        "report",
        "summary",
        "invoice",
        "chart",
        "parse",
        "render",
        "upload",
        "review",
    )
    for i in range(n):
        snippets = _harmless_snippets(rng)
        body = "\n\n".join(rng.sample(snippets, 6))
        files: Files = {"SKILL.md": SKILL_HEAD + f"\n# {rng.choice(words)}\n\n{body}\n"}
        for k in range(rng.randint(0, 3)):
            files[f"scripts/s{k}.py"] = "\n".join(rng.sample(snippets, 5)) + "\n"
            files[f"references/r{k}.md"] = "\n\n".join(rng.sample(snippets, 4)) + "\n"
        yield f"generated-{i}", files
    for base in (ROOT / "tests" / "corpus", ROOT / "examples" / "skills"):
        for d in sorted(p for p in base.iterdir() if (p / "SKILL.md").is_file()):
            yield (
                f"{base.name}/{d.name}",
                {str(f.relative_to(d)): f.read_bytes() for f in d.rglob("*") if f.is_file()},
            )
