"""Issue 25's findings, each as a test built from the format's public description:
private keys by their armour (real keys from ssh-keygen), the formats the first round
missed or only warned about, and ordinary text that was blocked as a credential.

Values are assembled at run time from seeded randomness; none is a live credential.
"""

from __future__ import annotations

import base64
import json
import os
import random
import string
import subprocess
from pathlib import Path

import pytest
from inmemory import skill_from_files
from secret_samples import SKILL_MD

from skillsyncd.config import Config
from skillsyncd.model import Finding, Severity
from skillsyncd.validation.gate import validate_skill
from skillsyncd.validation.secrets.scan import scan_text

SKILLSYNCD = str(Path(__file__).resolve().parent.parent / ".venv" / "bin" / "skillsyncd")
RNG = random.Random(2025)
AN = string.ascii_letters + string.digits


def rand(n: int, alphabet: str = AN) -> str:
    return "".join(RNG.choice(alphabet) for _ in range(n))


def b64url(obj: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def findings(files: dict[str, str | bytes]) -> tuple[Finding, ...]:
    skill, store = skill_from_files("demo", {"SKILL.md": SKILL_MD, **files})
    return validate_skill(skill, store, Config(), prefix="skills/demo")


def errors(found: tuple[Finding, ...]) -> list[str]:
    return [f.rule for f in found if f.severity is Severity.ERROR and f.rule.startswith("secret.")]


def validate_cli(folder: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SKILLSYNC_")}
    return subprocess.run([SKILLSYNCD, "validate", str(folder)], capture_output=True, text=True,
                          env=env, timeout=120)


def skill_folder(root: Path, name: str, body: str, extra: dict[str, str] | None = None) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "SKILL.md").write_text(f"---\nname: {name}\ndescription: d\nmetadata: {{version: '1'}}\n---\n"
                                     + body)
    for rel, text in (extra or {}).items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(text)
    return folder


# --- private keys: a secret by their armour alone ------------------------------------------

SSH_KEYGEN = [
    ("ed25519", ["-t", "ed25519", "-N", ""]),
    ("ecdsa", ["-t", "ecdsa", "-N", ""]),
    ("rsa-3072-default", ["-t", "rsa", "-N", ""]),
    ("ecdsa-521", ["-t", "ecdsa", "-b", "521", "-N", ""]),
    ("rsa-pem", ["-t", "rsa", "-b", "2048", "-m", "PEM", "-N", ""]),
    ("ecdsa-pkcs8", ["-t", "ecdsa", "-m", "PKCS8", "-N", ""]),
    ("ed25519-passphrase", ["-t", "ed25519", "-N", "correct horse battery"]),
]


@pytest.mark.parametrize(("label", "args"), SSH_KEYGEN, ids=[x[0] for x in SSH_KEYGEN])
def test_an_ssh_keygen_private_key_is_blocked(tmp_path: Path, label: str, args: list[str]) -> None:
    """`ssh-keygen -t ed25519 -N '' -f k` and friends: the key's text in a skill (in SKILL.md
    and as a file of its own) fails `validate` with secret.private-key, and the output
    holds no line of the key."""
    key_file = tmp_path / "k"
    subprocess.run(["ssh-keygen", "-q", *args, "-C", "test@example.invalid", "-f", str(key_file)],
                   check=True, capture_output=True, timeout=120)
    key = key_file.read_text()
    assert "PRIVATE KEY-----" in key
    repo = tmp_path / "repo"
    skill_folder(repo, "in-body", f"The deploy key:\n\n```\n{key}```\n")
    skill_folder(repo, "as-file", "Uses keys/id.\n", {"keys/id": key})
    done = validate_cli(repo)
    assert done.returncode == 4, done.stdout
    blocked = [ln for ln in done.stdout.splitlines() if "error [secret.private-key]" in ln]
    assert len(blocked) == 2, done.stdout
    for line in key.splitlines()[1:-1]:
        assert line not in done.stdout and line not in done.stderr


ARMOURS = ["RSA ", "DSA ", "EC ", "OPENSSH ", "ENCRYPTED ", "", "PGP ", "ANY "]


@pytest.mark.parametrize("kind", ARMOURS)
def test_every_pem_armour_is_blocked_whatever_its_body(kind: str) -> None:
    """A body of low-entropy bytes (an unencrypted key's preamble repeats) still counts."""
    tail = " BLOCK" if kind == "PGP " else ""
    for body in (base64.b64encode(RNG.randbytes(400)).decode(),
                 base64.b64encode(b"openssh-key-v1\0\0\0\0\4none" * 12 + RNG.randbytes(64)).decode()):
        lines = "\n".join(body[i:i + 64] for i in range(0, len(body), 64))
        pem = f"-----BEGIN {kind}PRIVATE KEY{tail}-----\n{lines}\n-----END {kind}PRIVATE KEY{tail}-----\n"
        assert [h.rule for h in scan_text(pem)] == ["secret.private-key"], kind


def test_an_ssh2_and_a_putty_private_key_are_blocked() -> None:
    body = base64.b64encode(RNG.randbytes(600)).decode()
    lines = "\n".join(body[i:i + 70] for i in range(0, len(body), 70))
    ssh2 = (f'---- BEGIN SSH2 ENCRYPTED PRIVATE KEY ----\nComment: "rsa-key-20250101"\n{lines}\n'
            "---- END SSH2 ENCRYPTED PRIVATE KEY ----\n")
    ppk = ("PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\nComment: k\nPublic-Lines: 2\n"
           f"{body[:64]}\n{body[64:100]}\nPrivate-Lines: 1\n{body[100:144]}\n"
           f"Private-MAC: {rand(64, '0123456789abcdef')}\n")
    for text in (ssh2, ppk):
        assert [h.rule for h in scan_text(text)] == ["secret.private-key"], text[:20]


# --- the formats of the first round, from their public descriptions ------------------------


def bedrock_long_term() -> str:
    """AWS: a long-term Bedrock API key is `ABSK` + base64 of
    `BedrockAPIKey-<id>-at-<account>:<secret>`."""
    key_id = rand(4, string.ascii_lowercase + string.digits)
    raw = f"BedrockAPIKey-{key_id}-at-{rand(12, string.digits)}:{rand(40)}"
    return "AB" + "SK" + base64.b64encode(raw.encode()).decode()


def bedrock_short_term() -> str:
    """AWS: a short-term key is `bedrock-api-key-` + base64 of a presigned bedrock.amazonaws.com URL."""
    url = (f"bedrock.amazonaws.com/?Action=CallWithBearerToken&X-Amz-Algorithm=AWS4-HMAC-SHA256"
           f"&X-Amz-Credential=ASIA{rand(16, string.ascii_uppercase)}%2F20250101%2Fus-east-1%2Fbedrock"
           f"&X-Amz-Security-Token={rand(300)}&X-Amz-Signature={rand(64, '0123456789abcdef')}&Version=1")
    return "bedrock-api-key-" + base64.b64encode(url.encode()).decode()


def django_key() -> str:
    """django.core.management.utils.get_random_secret_key(): 50 of a-z0-9!@#$%^&*(-_=+)."""
    return "".join(RNG.choice("abcdefghijklmnopqrstuvwxyz0123456789!@#$%^&*(-_=+)") for _ in range(50))


def teams_webhook() -> str:
    """Teams incoming webhook: <tenant>.webhook.office.com/webhookb2/<uuid>@<uuid>/
    IncomingWebhook/<32 hex>/<uuid>."""
    def uuid() -> str:
        h = rand(32, "0123456789abcdef")
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
    return (f"https://contoso.webhook.office.com/webhookb2/{uuid()}@{uuid()}/IncomingWebhook/"
            f"{rand(32, '0123456789abcdef')}/{uuid()}")


def workflow_webhook(host: str) -> str:
    """A Teams workflow (Power Automate) webhook, the successor of Office 365 connectors:
    .../workflows/<32 hex>/triggers/manual/paths/invoke?api-version=…&sp=…&sv=1.0&sig=<43>."""
    return (f"https://{host}/workflows/{rand(32, '0123456789abcdef')}/triggers/manual/paths/invoke"
            f"?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig={rand(43, AN + '_-')}")


def jwt(payload: dict[str, object]) -> str:
    return f"{b64url({'alg': 'HS256', 'typ': 'JWT'})}.{b64url(payload)}.{rand(43, AN + '_-')}"


T = 1_735_689_600
ROUND_ONE = {
    "bedrock long-term key": ("secret.aws-bedrock-api-key",
                              lambda: f"AWS_BEARER_TOKEN_BEDROCK={bedrock_long_term()}\n"),
    "bedrock short-term key": ("secret.aws-bedrock-api-key",
                               lambda: f"export AWS_BEARER_TOKEN_BEDROCK='{bedrock_short_term()}'\n"),
    "django settings.py": ("secret.named-credential", lambda: f"SECRET_KEY = '{django_key()}'\n"),
    "django .env": ("secret.named-credential", lambda: f"DJANGO_SECRET_KEY={django_key()}\n"),
    "django startproject": ("secret.django-secret-key",
                            lambda: f"SECRET_KEY = 'django-insecure-{django_key()}'\n"),
    "teams webhook": ("secret.teams-webhook", lambda: f"TEAMS_URL={teams_webhook()}\n"),
    "teams workflow webhook": ("secret.power-automate-webhook", lambda: "curl -X POST '"
                               + workflow_webhook("prod-27.westeurope.logic.azure.com:443") + "'\n"),
    "power platform webhook": ("secret.power-automate-webhook", lambda: "url: " + workflow_webhook(
        "default1f.environment.api.powerplatform.com:443/powerautomate/automations/direct") + "\n"),
    "supabase service_role": ("secret.jwt-service-role", lambda: "SUPABASE_SERVICE_ROLE_KEY=" + jwt(
        {"iss": "supabase", "ref": rand(20, string.ascii_lowercase), "role": "service_role",
         "iat": T, "exp": T + 10 * 365 * 86_400}) + "\n"),
    "session token for 30 days": ("secret.jwt-long-lived", lambda: "Cookie: session=" + jwt(
        {"sub": rand(24), "iat": T, "exp": T + 30 * 86_400}) + "\n"),
    "docker config.json": ("secret.registry-auth", lambda: json.dumps({"auths": {"registry.gitlab.com": {
        "auth": base64.b64encode(f"deployer:{rand(20)}".encode()).decode()}}}, indent=2) + "\n"),
    "kubernetes .dockerconfigjson": ("secret.registry-auth", lambda: ".dockerconfigjson: " + base64.b64encode(
        json.dumps({"auths": {"ghcr.io": {"auth": base64.b64encode(f"bot:{rand(24)}".encode()).decode()}}})
        .encode()).decode() + "\n"),
}


@pytest.mark.parametrize("label", sorted(ROUND_ONE))
def test_each_format_of_the_first_round_is_an_error(label: str) -> None:
    rule, make = ROUND_ONE[label]
    RNG.seed(label)  # the same values whichever worker runs the test, in whatever order
    for _ in range(20):
        text = make()
        found = findings({"config/settings.txt": text})
        got = [(f.rule, f.severity) for f in found if f.rule.startswith("secret.")]
        assert got == [(rule, Severity.ERROR)], (label, [f.rule for f in found])


def test_an_anon_or_short_lived_jwt_stays_a_warning() -> None:
    """The public anon key and a token of an hour are not held back."""
    for payload in ({"iss": "supabase", "role": "anon", "iat": T, "exp": T + 10 * 365 * 86_400},
                    {"sub": rand(12), "iat": T, "exp": T + 3600}):
        assert [h.rule for h in scan_text(f"key: {jwt(payload)}\n")] == ["secret.jwt"]


# --- ordinary text is not a credential ------------------------------------------------------

ISSUE_REPRODUCTIONS = {
    "a": '{ "name": "HTTP health", "status": "pass", "response_ms": 45 }\n',
    "b": 'SELL_TOKEN="0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2"\n',
    "c": "```python\ncredential = OnBehalfOfCredential(tenant_id=t)\n```\n",
    "d": "**Purpose:** Forward-secret, break-in-recovery message encryption\n",
}


def test_the_issues_four_reproductions_pass_validate(tmp_path: Path) -> None:
    for name, body in ISSUE_REPRODUCTIONS.items():
        folder = tmp_path / "r" / name
        folder.mkdir(parents=True)
        (folder / "SKILL.md").write_text(f"---\nname: {name}\ndescription: d\n---\n{body}")
        done = validate_cli(folder)
        assert done.returncode == 0, (name, done.stdout)
        assert "secret." not in done.stdout, (name, done.stdout)
