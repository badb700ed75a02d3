"""Secret rules against made-up keys of each format, and look-alikes that must not match.

Keys are assembled here from pieces at run time, so this repository never
holds a literal that looks like a live credential (push protection would
block it, and rightly).
"""

from __future__ import annotations

import base64
import json
import random
import string
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from inmemory import skill_from_files

from skillsyncd.config import Config
from skillsyncd.model import Finding, Severity
from skillsyncd.validation.gate import validate_skill
from skillsyncd.validation.secrets import compiled, fingerprints
from skillsyncd.validation.secrets import scan as scan_module
from skillsyncd.validation.secrets.allowlist import parse_allowlist
from skillsyncd.validation.secrets.decode import WINDOW_CHARS, scan_bytes
from skillsyncd.validation.secrets.fingerprints import fingerprint, legacy_digest
from skillsyncd.validation.secrets.scan import MAX_HITS_PER_FILE, scan_text

RNG = random.Random(20261124)
ALNUM = string.ascii_letters + string.digits
UPPER = string.ascii_uppercase + string.digits


def rand(n: int, alphabet: str = ALNUM) -> str:
    return "".join(RNG.choice(alphabet) for _ in range(n))


def b64url(obj: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def pem() -> str:
    body = base64.b64encode(bytes(RNG.randrange(256) for _ in range(300))).decode()
    lines = "\n".join(body[i:i + 64] for i in range(0, len(body), 64))
    kind = "RSA " + "PRIVATE"
    return f"-----BEGIN {kind} KEY-----\n{lines}\n-----END {kind} KEY-----"


KEYS: dict[str, str] = {
    "secret.anthropic-api-key": "sk-" + "ant-" + "api03-" + rand(93, ALNUM + "_-") + "AA",
    "secret.anthropic-admin-key": "sk-" + "ant-" + "admin01-" + rand(93, ALNUM + "_-") + "AA",
    "secret.openai-api-key": "sk-" + "proj-" + rand(74, ALNUM + "_-") + "T3Blbk" + "FJ" + rand(74),
    "secret.github-pat": "gh" + "p_" + rand(36),
    "secret.github-token": "gh" + "s_" + rand(36),
    "secret.slack-token": "xo" + "xb-" + rand(12, string.digits) + "-" + rand(13, string.digits)
    + "-" + rand(24),
    "secret.slack-webhook": "https://hooks.slack.com/services/" + "T" + rand(8, UPPER) + "/B"
    + rand(10, UPPER) + "/" + rand(24),
    "secret.stripe-live-key": "sk" + "_live_" + rand(24),
    "secret.google-api-key": "AI" + "za" + rand(35, ALNUM + "_-"),
    "secret.private-key": pem(),
    "secret.jwt": b64url({"alg": "HS256", "typ": "JWT"}) + "." + b64url({"sub": "42", "iat": 1700000000})
    + "." + rand(43, ALNUM + "_-"),
}
EXTRA_FORMATS = {
    "openai legacy with marker": ("secret.openai-api-key", "sk-" + rand(20) + "T3Blbk" + "FJ" + rand(20)),
    "openai plain legacy": ("secret.openai-api-key", "sk-" + rand(48)),
    "github fine-grained": ("secret.github-pat", "github_" + "pat_" + rand(22) + "_" + rand(59)),
    "github oauth": ("secret.github-token", "gh" + "o_" + rand(36)),
    "github user-to-server": ("secret.github-token", "gh" + "u_" + rand(36)),
    "github refresh": ("secret.github-token", "gh" + "r_" + rand(36)),
    "stripe restricted": ("secret.stripe-live-key", "rk" + "_live_" + rand(24)),
    "slack user token": ("secret.slack-token", "xo" + "xp-" + rand(12, string.digits) + "-" + rand(30)),
    "openai service account": ("secret.openai-api-key", "sk-" + "svcacct-" + rand(60, ALNUM + "_-")),
}
WARNINGS = {"secret.jwt", "secret.aws-access-key-id", "secret.generic"}


def scan(files: dict[str, str | bytes], allow: frozenset[str] = frozenset()) -> list[Finding]:
    skill, store = skill_from_files("demo", {"SKILL.md": "---\nname: demo\ndescription: d\n"
                                             "metadata: {version: '1'}\n---\n", **files})
    return list(validate_skill(skill, store, Config(), prefix="skills/demo",
                               allowed_fingerprints=allow))


@pytest.mark.parametrize("rule", sorted(KEYS))
def test_each_format_is_found_with_line_and_fingerprint(rule: str) -> None:
    key = KEYS[rule]
    text = f"# Setup\n\nexport TOKEN='{key}'\n"
    found = scan({"scripts/setup.sh": text})
    assert [f.rule for f in found] == [rule]
    f = found[0]
    assert f.path == "skills/demo/scripts/setup.sh" and f.line == 3
    assert f.severity is (Severity.WARNING if rule in WARNINGS else Severity.ERROR)
    secret_part = key.splitlines()[1] if rule == "secret.private-key" else key
    assert secret_part not in str(f) and secret_part[8:40] not in str(f)
    assert "…" in f.message and f"skills/demo/scripts/setup.sh:{rule}" in f.message


@pytest.mark.parametrize("label", sorted(EXTRA_FORMATS))
def test_more_formats(label: str) -> None:
    rule, key = EXTRA_FORMATS[label]
    hits = scan_text(f"value: {key}\n")
    assert [h.rule for h in hits] == [rule]


def test_aws_key_id_alone_is_a_warning_and_with_a_secret_an_error() -> None:
    key_id = "AK" + "IA" + rand(16, UPPER)
    secret = rand(40, ALNUM + "/+")
    alone = scan_text(f"aws_access_key_id = {key_id}\n")
    assert [h.rule for h in alone] == ["secret.aws-access-key-id"]
    paired = scan_text(f"[default]\naws_access_key_id = {key_id}\nregion = eu-west-1\n"
                       f"aws_secret_access_key = {secret}\n")
    assert [h.rule for h in paired] == ["secret.aws-secret-key"]
    assert paired[0].secret == secret and paired[0].line == 4
    far = scan_text(f"id = {key_id}\n" + "\n" * 20 + f"later = {secret}\n")
    assert "secret.aws-secret-key" not in {h.rule for h in far}
    sts = scan_text(f"AWS_ACCESS_KEY_ID={'AS' + 'IA' + rand(16, UPPER)}\n")
    assert [h.rule for h in sts] == ["secret.aws-access-key-id"]


def test_aws_id_next_to_a_git_sha_is_not_a_pair() -> None:
    text = f"key {'AK' + 'IA' + rand(16, UPPER)}\ncommit {rand(40, '0123456789abcdef')}\n"
    assert [h.rule for h in scan_text(text)] == ["secret.aws-access-key-id"]


def test_generic_high_entropy_assignment_is_a_warning() -> None:
    value = rand(32)
    found = scan({"config.yaml": f"service:\n  token_cache_seed: \"{value}\"\n"})
    assert [(f.rule, f.severity, f.line) for f in found] == [("secret.generic", Severity.WARNING, 2)]


@pytest.mark.parametrize("line", [
    "service:\n  api_key: \"{v}\"\n", "DB_PASSWORD={v}\n", "export CLIENT_SECRET='{v}'\n",
    "docker run -e WEBHOOK_SECRET={v} app\n", '{{"accessToken": "{v}"}}\n',
])
def test_a_telling_name_makes_a_random_value_a_credential(line: str) -> None:
    for value in (rand(32), rand(40, "0123456789abcdef"), "3f1a9c0b-7d2e-4b1a-9c3d-5e6f7a8b9c0d"):
        found = scan({"config.txt": line.format(v=value)})
        assert [(f.rule, f.severity) for f in found] == [("secret.named-credential", Severity.ERROR)], value


def test_unquoted_aws_secret_is_an_error() -> None:
    secret = rand(40, ALNUM + "/+")
    for text in (f"AWS_SECRET_ACCESS_KEY={secret}\n", f"export AWS_SECRET_ACCESS_KEY={secret}\n",
                 f"docker run -e AWS_SECRET_ACCESS_KEY={secret} img\n", f'"SecretAccessKey": "{secret}"\n'):
        assert [h.rule for h in scan_text(text)] == ["secret.aws-secret-key"], text


def test_private_key_inside_a_json_string() -> None:
    key = pem().replace("\n", "\\n")
    assert [h.rule for h in scan_text(f'{{"private_key": "{key}"}}')] == ["secret.private-key"]


def test_line_numbers_with_crlf() -> None:
    hits = scan_text("a\r\nb\r\ntoken " + KEYS["secret.github-pat"] + "\r\n")
    assert hits[0].line == 3


LOOK_ALIKES = [
    "curl -H 'x-api-key: YOUR_API_KEY' https://api.anthropic.com/v1/messages",
    "Authorization: Bearer sk-...",
    "Anthropic keys look like sk-ant-xxxxx",
    "curl -H \"Authorization: token <token>\"",
    "export OPENAI_API_KEY=$OPENAI_API_KEY",
    "api_key = os.environ['ANTHROPIC_API_KEY']",
    "const token = process.env.GITHUB_TOKEN_FOR_THE_RELEASE_JOB;",
    "var apiKey = Environment.GetEnvironmentVariable(\"OPENAI_API_KEY\");",
    "password = os.getenv('DB_PASSWORD_FROM_ENVIRONMENT')",
    "token: ${{ secrets.GITHUB_TOKEN }}",
    "API_KEY=${ANTHROPIC_API_KEY:-}",
    "AI" + "zaSyA1B2C3D4E5F6G7H8I9J0K1L2M3N4O5P6Q",
    "api_key: 'abcdefghijklmnopqrstuvwxyz0123456789'",
    "postgresql://postgres:postgres@localhost:5432/app",
    "redis://:password@localhost:6379/0",
    "mongodb://user:<password>@cluster0.example.net/db",
    "https://user:${TOKEN}@github.com/org/repo.git",
    "request_id: 550e8400-e29b-41d4-a716-446655440000",
    "sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAu1SU1LfVLPHCozMxH2Mo\n"
    "-----END PUBLIC KEY-----",
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl user@host",
    "ghp_" + "x" * 36,
    "sk-" + "ant-api03-" + "x" * 93,
    "sk-" + "ant-api03-" + "X" * 40 + "..." + "X" * 40,
    "sk-proj-" + "." * 3,
    "sk-proj-" + "*" * 50,
    "github_pat_" + "X" * 82,
    "aws_access_key_id = AKIAIOSFODNN7EXAMPLE",
    "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
    "SLACK_BOT_TOKEN=xoxb-your-bot-token",
    "stripe.api_key = 'sk_test_" + "4eC39HqLyjWDarjtT1zdp7dc'",
    "sk_live_" + "YOUR_SECRET_KEY_HERE_1234",
    "AIza" + "SyYOUR_GOOGLE_API_KEY_GOES_HERE_xxxx",
    "-----BEGIN PRIVATE KEY-----\n...\n-----END PRIVATE KEY-----",
    "-----BEGIN RSA PRIVATE KEY-----\n<your key here>\n-----END RSA PRIVATE KEY-----",
    "eyJub3QiOiAiYSBqd3QifQ.eyJzdWIiOiAiMSJ9.c2lnbmF0dXJlc2lnbmF0dXJl",  # header has no alg
    "This task-based risk-assessment framework asks-questions-about many things",
    "password: correct-horse-battery-staple",
    "token: ANTHROPIC_API_KEY_FROM_THE_ENVIRONMENT",
    "secret_name: projects/my-project/secrets/api-key/versions/latest",
    "commit 3f9a1c2b4d5e6f708192a3b4c5d6e7f8091a2b3c",
    "integrity sha512-" + "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKL",
]


@pytest.mark.parametrize("text", LOOK_ALIKES)
def test_look_alikes_do_not_match(text: str) -> None:
    assert scan_text(text + "\n") == []


def test_allowlist_accepts_by_path_and_rule() -> None:
    key = KEYS["secret.github-pat"]
    files: dict[str, str | bytes] = {"notes.md": f"test token {key}\n"}
    assert scan(files)
    assert scan(files, frozenset({"skills/demo/notes.md:secret.github-pat"})) == []
    assert scan(files, frozenset({"skills/*/notes.md:secret.*"})) == []
    assert scan(files, frozenset({"skills/demo/notes.md:secret.github-pat:1"})) == []
    assert scan(files, frozenset({"skills/demo/notes.md:secret.github-pat:2"}))  # another line
    assert scan(files, frozenset({"skills/demo/other.md:secret.github-pat"}))  # another file
    assert scan(files, frozenset({"skills/demo/notes.md:secret.slack-token"}))  # another rule
    allow = parse_allowlist("# test fixtures\nskills/demo/notes.md:github-pat  # fake token in notes\n\n")
    assert scan(files, allow) == []


def test_legacy_digest_entries_still_allow_but_warn() -> None:
    """Old files list the unkeyed SHA-256 digest; they keep working, with a migration hint."""
    key = KEYS["secret.github-pat"]
    files: dict[str, str | bytes] = {"notes.md": f"test token {key}\n"}
    legacy = f"{key[:4]}…{legacy_digest(key)}"
    for allow in (frozenset({legacy}), frozenset({legacy_digest(key)}),
                  parse_allowlist(f"{legacy.replace('…', '...')}  # fake token\n")):
        found = scan(files, allow)
        assert [(f.rule, f.severity) for f in found] == [("allowlist.legacy-digest", Severity.WARNING)]
        assert "skills/demo/notes.md:secret.github-pat" in found[0].message
        assert key not in str(found[0])


def test_parse_allowlist_ignores_junk() -> None:
    assert parse_allowlist(b"# only a comment\nnot a fingerprint\n\xff\xfe\n") == frozenset()


def test_fingerprint_is_keyed() -> None:
    """The same secret fingerprints differently under different keys, so a reader of the
    log cannot hash a guess and compare; the shown prefix names the format only."""
    secret = "ghp_" + "a1" * 18
    fp = fingerprint(secret, b"k" * 32, "ghp_")
    assert fp.startswith("ghp_…") and len(fp) == 4 + 1 + 12
    assert fp != fingerprint(secret, b"j" * 32, "ghp_")
    assert fp[-12:] != legacy_digest(secret)
    assert fingerprint(secret, b"k" * 32, "ghp_") == fp


def test_fingerprint_key_lives_in_the_state_dir(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    key = fingerprints.fingerprint_key(state)
    path = state / fingerprints.KEY_FILE
    assert path.read_bytes() == key and len(key) == 32
    assert path.stat().st_mode & 0o777 == 0o600
    fingerprints._KEYS.clear()
    assert fingerprints.fingerprint_key(state) == key  # read back, not made again
    assert fingerprints.fingerprint_key(tmp_path / "missing") == fingerprints._PROCESS_KEY
    assert [p.name for p in state.iterdir()] == [fingerprints.KEY_FILE]  # no temp file left


def test_findings_fingerprint_with_the_state_dir_key(tmp_path: Path) -> None:
    key = KEYS["secret.github-pat"]
    skill, store = skill_from_files("demo", {"SKILL.md": "---\nname: demo\ndescription: d\n---\n",
                                             "a.txt": f"t {key}\n"})
    found = validate_skill(skill, store, Config(state_dir=tmp_path))
    expected = fingerprint(key, fingerprints.fingerprint_key(tmp_path), "ghp_")
    [f] = [f for f in found if f.rule.startswith("secret.")]
    assert f.rule == "secret.github-pat" and expected in f.message


def test_media_is_skipped_but_other_binaries_are_read_for_text() -> None:
    key = KEYS["secret.github-pat"]
    assert scan({"assets/pic.png": b"\x89PNG\r\n\x1a\n\x00\x01" + key.encode()}) == []
    assert scan({"assets/a.zip": b"PK\x03\x04\x00" + key.encode()}) == []
    found = scan({"data/app.db": b"SQLite format 3\x00\x01\x02\n\x00\xff" + key.encode() + b"\x00\x00"})
    assert [(f.rule, f.line) for f in found] == [("secret.github-pat", 2)]


def test_large_files_are_scanned_in_windows_with_exact_lines() -> None:
    key = KEYS["secret.github-pat"]
    filler = "plain words on a line\n"
    lines = WINDOW_CHARS * 2 // len(filler)
    big = filler * lines + f"token {key}\n"
    found = scan({"data/big.txt": big.encode()})
    assert [(f.rule, f.line) for f in found] == [("secret.github-pat", lines + 1)]


@pytest.mark.parametrize("offset", [-40, -20, -5, 0, 3, 30])
def test_a_secret_across_a_window_boundary_is_found_once(offset: int) -> None:
    key = KEYS["secret.stripe-live-key"]
    head = "a" * (WINDOW_CHARS + offset - 7) + "\n"
    hits = list(scan_bytes((head + "x = 1\nkey: " + key + "\nmore\n").encode()))
    assert [(h.rule, h.line) for h in hits] == [("secret.stripe-live-key", 3)]


def test_utf16_and_bom_text_is_decoded() -> None:
    key = KEYS["secret.github-pat"]
    text = f"# setup.ps1\r\n$env:GH_TOKEN = '{key}'\r\n"
    for data in (text.encode("utf-16"), text.encode("utf-16-le"), text.encode("utf-16-be"),
                 b"\xef\xbb\xbf" + text.encode()):
        assert [(h.rule, h.line) for h in scan_bytes(data)] == [("secret.github-pat", 2)], data[:4]


def test_non_utf8_text_is_still_scanned() -> None:
    key = KEYS["secret.stripe-live-key"]
    found = scan({"legacy.txt": b"caf\xe9\n" + key.encode() + b"\n"})
    assert [(f.rule, f.line) for f in found] == [("secret.stripe-live-key", 2)]


def test_secret_in_skill_md_itself() -> None:
    skill, store = skill_from_files("demo", {
        "SKILL.md": "---\nname: demo\ndescription: d\n---\nUse " + KEYS["secret.google-api-key"] + "\n"})
    found = validate_skill(skill, store, Config())
    assert "secret.google-api-key" in {f.rule for f in found}


def test_secret_rules_can_be_turned_down() -> None:
    skill, store = skill_from_files("demo", {"SKILL.md": "---\nname: demo\ndescription: d\n"
                                             "version: '1'\n---\n", "a.txt": KEYS["secret.github-pat"]})
    assert validate_skill(skill, store, Config(severity={"secret.*": "off"})) == ()


@pytest.mark.parametrize(
    "unit", ["token", "api_key: ", "eyJ", "sk-", "AKIA" + "Q1W2E3R4T5Y6U7I8 ", "secret" + "A" * 50]
)
def test_adversarial_megabyte_scans_quickly(unit: str) -> None:
    text = unit * (1024 * 1024 // len(unit))
    start = time.monotonic()
    hits = scan_text(text)
    # A liveness bound, not a speed target: catastrophic backtracking on 1 MB takes
    # hours; a linear scan takes well under a second (speed lives in `make bench`).
    assert time.monotonic() - start < 60
    assert len(hits) <= MAX_HITS_PER_FILE


PIECES = st.sampled_from([*ALNUM[:20], *"-_./+=:\"' \n", "sk-", "ghp_", "AKIA", "eyJ", "token=", "xoxb-"])


@settings(deadline=2000, max_examples=200)
@given(st.lists(PIECES, max_size=200).map("".join))
def test_scan_never_raises(text: str) -> None:
    for hit in scan_text(text):
        assert hit.line >= 1 and hit.secret


# --- the prefilter: skipping a rule whose literal text is absent changes no result ---------


def _unfiltered(text: str, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int, str]]:
    with monkeypatch.context() as m:
        m.setattr(scan_module, "needles_in", lambda runs: frozenset(compiled.ALL_NEEDLES))
        return [(h.rule, h.line, h.secret) for h in scan_text(text)]


SECRET_PIECES = st.sampled_from([
    *KEYS.values(), *(k for _, k in EXTRA_FORMATS.values()), "AK" + "IA" + rand(16, UPPER),
    rand(40, ALNUM + "/+"), "api_key: ", "token = '", "password=", "\n", " ", "\t", ":", "=", "\"",
    rand(24), rand(8), "-----", "sk-", "sk_live_", "eyJ", "=====", "Prose words here. ", "\\n", "\\/",
    "https://u:", "@host", "DISCORD_TOKEN=", rand(64, "0123456789abcdef"),
])


@settings(deadline=4000, max_examples=150)
@given(st.lists(SECRET_PIECES, max_size=12).map("".join))
def test_prefilter_finds_exactly_what_the_full_scan_finds(text: str) -> None:
    with pytest.MonkeyPatch.context() as monkeypatch:
        expected = _unfiltered(text, monkeypatch)
    assert [(h.rule, h.line, h.secret) for h in scan_text(text)] == expected
