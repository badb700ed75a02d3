"""The token rule off loopback: a real daemon bound to 127.0.0.2 (not the container-only default).

Only POST /webhook/github (signed) and /healthz answer without
``Authorization: Bearer $SKILLSYNC_HTTP_TOKEN``; everything else is 401.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from gitserver import HttpGitServer, RepoBuilder
from test_daemon import SKILLSYNCD, Daemon, _clean_env

from skillsyncd.daemon.access import bearer_matches, is_local, is_open
from skillsyncd.daemon.webhook import sign

TOKEN = "http-canary-token-Vb81kQz3"
SECRET = "webhook-secret-for-access"
GUARDED = ("/", "/status", "/readyz", "/metrics", "/no-such-path")


def _get(base: str, path: str, token: str | None = None) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(base + path, headers=headers),
                                    timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_rules() -> None:
    assert is_local("127.0.0.1:18790") and is_local("[::1]:1") and is_local("localhost:1")
    assert not is_local("0.0.0.0:18790") and not is_local("127.0.0.2:1") and not is_local("[::]:1")
    assert is_open("POST", "/webhook/github") and is_open("GET", "/healthz")
    assert not is_open("GET", "/webhook/github") and not is_open("GET", "/status")
    assert bearer_matches(f"Bearer {TOKEN}", TOKEN) and bearer_matches(f"bearer  {TOKEN} ", TOKEN)
    assert not bearer_matches(f"Bearer {TOKEN}x", TOKEN) and not bearer_matches(f"Basic {TOKEN}", TOKEN)
    assert not bearer_matches("Bearer ", "") and not bearer_matches(None, TOKEN)


@pytest.mark.parametrize("with_token", [True, False])
def test_off_loopback_only_the_webhook_and_healthz_answer_without_a_token(
    http_git_server: HttpGitServer, repo: RepoBuilder, tmp_path: Path, with_token: bool,
) -> None:
    repo.add_skill("alpha")
    head = repo.commit("v1")
    env = {"SKILLSYNC_INTERVAL": "60", "GITHUB_WEBHOOK_SECRET": SECRET}
    if with_token:
        env["SKILLSYNC_HTTP_TOKEN"] = TOKEN
    d = Daemon([SKILLSYNCD, "run", "--repo", http_git_server.url_for(repo), "--state-dir",
                str(tmp_path / "state"), "--http-bind", "127.0.0.2:0"], _clean_env(env))
    try:
        assert d.base.startswith("http://127.0.0.2:")
        d.wait_event(lambda e: e.get("event") == "sync_finished" and e.get("commit") == head)
        assert _get(d.base, "/healthz")[0] == 200
        body = json.dumps({"ref": "refs/heads/main"}).encode()
        code, answer = d.post("/webhook/github", body, {
            "X-GitHub-Event": "push", "X-GitHub-Delivery": "a1", "Content-Type": "application/json",
            "X-Hub-Signature-256": sign(SECRET, body)})
        assert (code, answer["result"]) == (202, "triggered")
        code, answer = d.post("/webhook/github", body, {"X-GitHub-Event": "push",
                                                        "X-GitHub-Delivery": "a2"})
        assert (code, answer["result"]) == (401, "unauthorized")  # the webhook's own rule
        for path in GUARDED:
            code, text = _get(d.base, path)
            assert code == 401, (path, code)
            assert "SKILLSYNC_HTTP_TOKEN" in json.loads(text)["reason"]
            assert _get(d.base, path, token="wrong-token-xyz")[0] == 401
        if with_token:
            assert _get(d.base, "/status", TOKEN)[0] == 200
            assert _get(d.base, "/metrics", TOKEN)[0] == 200
            assert _get(d.base, "/", TOKEN)[0] == 200
            assert _get(d.base, "/no-such-path", TOKEN)[0] == 404
        else:
            assert any(e.get("event") == "http_token_missing" for e in d.events)
        assert d.stop() == 0
    finally:
        d.kill()
    assert TOKEN not in "".join(d.lines)
