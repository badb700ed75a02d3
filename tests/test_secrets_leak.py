"""No secret ever reaches a log line, an answer or a file: a grep over everything written.

Distinctive values stand in for a GitHub token, a Neo4j password and a webhook
secret. Real processes run with them: ``--once`` syncs over HTTP that demands the
token (right, wrong, and inside the URL), ``status``/``releases``/``audit``, and a
daemon taking signed and forged webhooks while its Neo4j replica is unreachable
(so the error paths that like to print connection details run too). Then every
line those processes printed, every HTTP answer, and every byte of every file
under the state dir (journal, state.json, manifests, the mirror's config and
packs) and the publish dir is searched for each secret, raw and in the base64
form an HTTP Basic header would carry.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path
from typing import Any

from gitserver import HttpGitServer, RepoBuilder
from receivers import JsonReceiver
from test_daemon import SKILLSYNCD, Daemon, _clean_env

from skillsyncd.daemon.webhook import sign
from skillsyncd.release.releases import Releases

TOKEN = "ghs_LeakCanaryToken7f3a9c2e5b1d8f4a6c0e"
WRONG_TOKEN = "ghs_WrongCanaryToken0d9e8f7a6b5c4d3e2f1a"
URL_TOKEN = "ghs_UrlCanaryToken5e4d3c2b1a0f9e8d7c6b"
NEO4J_PASSWORD = "neo4j-canary-pw-Q8zL2vX9"
WEBHOOK_SECRET = "webhook-canary-secret-M4nB7cR1"
# Alert receivers (SKILLSYNC_NOTIFY): a password and path tokens inside Apprise URLs, one
# receiver that answers and one that is down (so the failure path prints too).
NOTIFY_PASSWORD = "notify-canary-pw-Zx81Lq0"
NOTIFY_TOKEN = "notifyCanaryTokenT7y2Wd5s"
NOTIFY_DOWN_TOKEN = "notifyCanaryDownK3m9Rp4v"
HTTP_TOKEN = "http-canary-token-Hc6Nw2Qa"
# Credentials committed into a skill (held back by the validation gate): the findings
# about them are logged, journalled and returned, and must name them by rule, file, line
# and keyed fingerprint only. Assembled at run time so no literal looks live.
SKILL_SECRETS = {
    "gitlab": "gl" + "pat-" + "Qm7Zr2Xc9Vb4Nk1Ls8Dp",
    "npm": "np" + "m_" + "Hq4Wz8Rt2Yk6Pm0Cx3Vb7Nf1Lg5Js9Dd2Eab",
    "url_password": "Pg7!qZ2" + "xW9mK4t",
    "hex_secret": "9c2e5b1d8f4a6c0e" + "3b7a1f9d2c8e4b6a",
}
SECRETS = (TOKEN, WRONG_TOKEN, URL_TOKEN, NEO4J_PASSWORD, WEBHOOK_SECRET, NOTIFY_PASSWORD, NOTIFY_TOKEN,
           NOTIFY_DOWN_TOKEN, HTTP_TOKEN, *SKILL_SECRETS.values())


def needles() -> dict[str, bytes]:
    """Each secret as raw bytes and as it would appear inside an HTTP Basic header."""
    out: dict[str, bytes] = {}
    for s in SECRETS:
        out[s] = s.encode()
        for user in ("x-access-token", "neo4j"):
            out[f"basic({user}:{s})"] = base64.b64encode(f"{user}:{s}".encode())
    return out


def leaks_in(blob: bytes) -> list[str]:
    return [name for name, needle in needles().items() if needle in blob]


def files_under(*roots: Path) -> list[Path]:
    return [p for root in roots if root.exists() for p in root.rglob("*")
            if p.is_file() and not p.is_symlink()]


def run(argv: list[str], env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SKILLSYNCD, *argv], env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_no_secret_in_any_log_line_answer_or_file(
    http_git_server: HttpGitServer, repo: RepoBuilder, tmp_path: Path, closed_port: int
) -> None:
    state = tmp_path / "state"
    published = tmp_path / "published"
    hook_secret_file = tmp_path / "secrets" / "webhook"
    hook_secret_file.parent.mkdir()
    hook_secret_file.write_text(WEBHOOK_SECRET + "\n")
    repo.add_skill("alpha", description="first")
    repo.add_skill("leaky", description="holds credentials", extra_files={
        "scripts/setup.sh": f"export GITLAB_TOKEN={SKILL_SECRETS['gitlab']}\n"
                            f"export NPM_TOKEN='{SKILL_SECRETS['npm']}'\n",
        "config.yaml": f"db: postgresql://app:{SKILL_SECRETS['url_password']}@db.internal:5432/main\n"
                       f"client_secret: {SKILL_SECRETS['hex_secret']}\n",
    })
    repo.commit("v1")
    url = http_git_server.url_for(repo)
    receiver = JsonReceiver()
    base = {
        "SKILLSYNC_PUBLISH_MODE": "mirror", "SKILLSYNC_PUBLISH_DIR": str(published),
        "NEO4J_URI": f"bolt://127.0.0.1:{closed_port}", "NEO4J_PASSWORD": NEO4J_PASSWORD,
        "SKILLSYNC_NETWORK_TIMEOUT": "2",
        "SKILLSYNC_NOTIFY": f"json://alert:{NOTIFY_PASSWORD}@127.0.0.1:{receiver.port}/hook/{NOTIFY_TOKEN}"
                            f" json://127.0.0.1:{closed_port}/down/{NOTIFY_DOWN_TOKEN}",
    }
    printed: list[str] = []  # every line any process wrote, and every HTTP answer

    def cli(argv: list[str], **env: str) -> subprocess.CompletedProcess[str]:
        proc = run(argv, _clean_env({**base, **env}))
        printed.extend([proc.stdout, proc.stderr])
        return proc

    common = ["--repo", url, "--state-dir", str(state)]
    http_git_server.require_auth("x-access-token", TOKEN)
    try:
        # the right token, from the environment, with the webhook secret set too
        ok = cli(["--once", *common], GITHUB_TOKEN=TOKEN, GITHUB_WEBHOOK_SECRET=WEBHOOK_SECRET)
        assert ok.returncode == 0, ok.stderr
        assert Releases(state).current() is not None
        # a wrong token: refused, and the refusal does not echo it
        repo.add_skill("alpha", description="second")
        repo.commit("v2")
        bad = cli(["--once", *common], GITHUB_TOKEN=WRONG_TOKEN)
        assert bad.returncode == 1 and "authentication refused" in bad.stderr
        # the token inside the URL: used, then never written down
        http_git_server.require_auth("x-access-token", URL_TOKEN)
        in_url = url.replace("http://", f"http://x-access-token:{URL_TOKEN}@")
        ok2 = cli(["--once", "--repo", in_url, "--state-dir", str(state)])
        assert ok2.returncode == 0, ok2.stderr
        http_git_server.require_auth("x-access-token", TOKEN)
        for argv in (["status", "--json"], ["releases", "--json"], ["audit", "--json", "--all"],
                     ["audit", "push"]):
            cli([*argv, "--state-dir", str(state)], GITHUB_TOKEN=TOKEN)

        # the daemon: token from the environment, webhook secret from a file, Neo4j down
        repo.add_skill("alpha", description="third")
        third = repo.commit("v3")
        d = Daemon([SKILLSYNCD, "run", *common, "--http-bind", "127.0.0.1:0"],
                   _clean_env({**base, "GITHUB_TOKEN": TOKEN, "SKILLSYNC_INTERVAL": "0.5",
                               "GITHUB_WEBHOOK_SECRET_FILE": str(hook_secret_file),
                               "SKILLSYNC_HTTP_TOKEN": HTTP_TOKEN}))
        try:
            d.wait_event(lambda e: e.get("event") == "sync_finished" and e.get("commit") == third,
                         timeout=20)
            body = json.dumps({"ref": "refs/heads/main"}).encode()
            answers: list[Any] = []
            for i, signature in enumerate([sign(WEBHOOK_SECRET, body), sign("forged", body),
                                           "sha256=" + WEBHOOK_SECRET, "", sign(WEBHOOK_SECRET, body)]):
                headers = {"X-GitHub-Event": "push", "X-GitHub-Delivery": f"leak-{i % 4}",
                           "Content-Type": "application/json"}
                if signature:
                    headers["X-Hub-Signature-256"] = signature
                answers.append(d.post("/webhook/github", body, headers))
            assert [a[0] for a in answers] == [202, 401, 401, 401, 409]
            # Two more syncs, and the sink's failure to reach the replica: the error paths
            # whose output is checked below have run (seen, not assumed after a pause).
            mark = len(d.events)
            for _ in range(2):
                d.wait_event(lambda e: e.get("event") == "next_sync", start=mark, timeout=20)
                mark = len(d.events)
            d.wait_event(lambda e: e.get("event") == "audit_ship_failed", timeout=20)
            for path in ("/status", "/metrics", "/readyz", "/healthz"):
                printed.append(d.get(path)[1])
            printed.append(json.dumps(answers))
            assert d.stop() == 0
        finally:
            d.kill()
            printed.extend(d.lines)
    finally:
        http_git_server.require_auth(None, None)
        receiver.close()

    assert receiver.posts, "the held-back skill should have been announced"
    printed.extend(json.dumps(body) for _headers, body in receiver.posts)
    assert any('"alert_failed"' in line for line in printed), "the receiver that is down is reported"
    assert any("neo4j" in line.lower() or "sink" in line.lower() for line in printed), \
        "the unreachable Neo4j replica should have been tried (and reported) at least once"
    text = "\n".join(printed).encode()
    for rule in ("secret.gitlab-pat", "secret.npm-token", "secret.url-credential", "secret.named-credential"):
        assert rule.encode() in text, f"the held-back skill's {rule} finding should have been reported"
    assert leaks_in(text) == [], "a secret appeared in output"
    written = files_under(state, published)
    assert len(written) > 10 and any(p.name == "config" for p in written)
    leaks = {str(p.relative_to(tmp_path)): found for p in written if (found := leaks_in(p.read_bytes()))}
    assert leaks == {}, f"secrets written to disk: {leaks}"
    # the secret file itself is the only place the webhook secret lives
    assert WEBHOOK_SECRET in hook_secret_file.read_text()


def test_a_token_in_the_configured_url_is_redacted_everywhere(
    http_git_server: HttpGitServer, repo: RepoBuilder, tmp_path: Path
) -> None:
    """The URL form people paste from docs (token as userinfo) in the environment, not a flag."""
    repo.add_skill("alpha", description="first")
    repo.commit("v1")
    http_git_server.require_auth("x-access-token", URL_TOKEN)
    try:
        url = http_git_server.url_for(repo).replace("http://", f"http://x-access-token:{URL_TOKEN}@")
        state = tmp_path / "state"
        env = _clean_env({"SKILLSYNC_REPO": url, "SKILLSYNC_STATE_DIR": str(state)})
        proc = run(["--once"], env)
        assert proc.returncode == 0, proc.stderr
        status = run(["status", "--json"], env)
    finally:
        http_git_server.require_auth(None, None)
    assert leaks_in((proc.stdout + proc.stderr + status.stdout + status.stderr).encode()) == []
    for p in files_under(state):
        assert leaks_in(p.read_bytes()) == [], p
    assert "127.0.0.1" in status.stdout  # the redacted URL is still shown


def test_leak_checker_finds_raw_and_basic_forms() -> None:
    """The grep itself must be able to fail."""
    assert leaks_in(b"token=" + TOKEN.encode()) == [TOKEN]
    basic = base64.b64encode(f"x-access-token:{TOKEN}".encode())
    assert leaks_in(b"Authorization: Basic " + basic) == [f"basic(x-access-token:{TOKEN})"]
    assert leaks_in(os.urandom(64).hex().encode()) == []
