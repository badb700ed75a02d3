"""Tag channels (SKILLSYNC_REF=semver:RANGE): the newest tag in the range deploys.

The picking rules are pure (skillsyncd/source/channels.py); the rest runs against real
git servers on 127.0.0.1 (tests/gitserver.py): ``git http-backend`` over smart HTTP,
``git daemon`` over git://, and a local path.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from gitserver import GitDaemonServer, HttpGitServer, RepoBuilder, run_git

from skillsyncd.cli import main
from skillsyncd.config import Config, load_config
from skillsyncd.errors import ConfigError, RefNotFound
from skillsyncd.release.releases import Releases
from skillsyncd.source.channels import parse_channel, pick_tag, tag_moved
from skillsyncd.status import status_dict
from skillsyncd.sync.assembly import build_syncer

RANGE = "semver:>=1.2.0,<2"
TAGS = {"v1.0.0": "c1", "v1.2.0": "c2", "v1.3.0-rc1": "c3", "v2.0.0": "c4", "notes": "c5",
        "1.1.0": "c6"}


def _pick(ref: str, tags: dict[str, str] = TAGS) -> str:
    channel = parse_channel(ref)
    assert channel is not None
    return pick_tag(channel, tags, "https://example.invalid/skills.git").name


def test_the_newest_final_release_in_the_range_is_picked() -> None:
    assert _pick(RANGE) == "v1.2.0"
    assert _pick("semver:>=1.0") == "v2.0.0"
    assert _pick("semver:<1.2") == "1.1.0"  # no leading v is a version too
    assert _pick("semver: >= 1.0.0 , < 1.2") == "1.1.0"  # spaces are allowed


def test_pre_releases_count_only_when_asked() -> None:
    assert _pick("semver-pre:>=1.2.0,<2") == "v1.3.0-rc1"
    assert _pick("semver:>=1.3.0-rc1,<2") == "v1.3.0-rc1"  # the range names one
    assert _pick("semver:>=1.3.0,<2", {**TAGS, "v1.3.0": "c7"}) == "v1.3.0"


def test_a_tie_between_spellings_goes_to_the_same_tag_every_time() -> None:
    tags = {"1.2.0": "a", "v1.2.0": "b"}
    assert _pick(RANGE, tags) == _pick(RANGE, dict(reversed(list(tags.items())))) == "v1.2.0"


def test_no_match_is_one_line_naming_the_newest_tags() -> None:
    with pytest.raises(RefNotFound) as err:
        _pick("semver:>=3")
    text = str(err.value)
    assert "\n" not in text
    assert "no tag on https://example.invalid/skills.git matches 'semver:>=3'" in text
    assert "v2.0.0, v1.3.0-rc1, v1.2.0" in text


@pytest.mark.parametrize("ref", ["semver:>=1.2.0,,<2x", "semver:~1", "semver:"])
def test_a_bad_range_is_refused_at_start(ref: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="semver"):
        load_config(flags={"repo": "x", "state_dir": str(tmp_path), "ref": ref}, env={})


def test_other_refs_are_no_channel() -> None:
    assert parse_channel("main") is None and parse_channel("v1.2.0") is None
    assert tag_moved({"v1": "a"}, "a") is False
    assert tag_moved({"v1": "b"}, "a") is True
    assert tag_moved({"v1": "b"}, None) is False


# --------------------------------------------------------------------------- real servers


def _url(transport: str, repo: RepoBuilder, http: HttpGitServer, daemon: GitDaemonServer) -> str:
    if transport == "http":
        return http.url_for(repo)
    if transport == "git":
        return daemon.url_for(repo)
    return str(repo.path)


def _release(repo: RepoBuilder, version: str, annotated: bool = False) -> str:
    repo.add_skill("tool", description=f"tool {version}")
    sha = repo.commit(f"release {version}")
    repo.tag(version, message=f"release {version}" if annotated else None)
    return sha


def _deployed(cfg: Config) -> dict[str, Any]:
    releases = Releases(cfg.state_dir)
    current = releases.current()
    assert current is not None
    return releases.manifest(current).to_dict()


def _journal(cfg: Config) -> list[dict[str, Any]]:
    return [json.loads(line) for line in cfg.journal_file.read_text().splitlines()]


@pytest.mark.parametrize("transport", ["http", "git", "local"])
def test_a_channel_follows_its_newest_tag(transport: str, repo: RepoBuilder, tmp_path: Path,
                                          http_git_server: HttpGitServer,
                                          git_daemon_server: GitDaemonServer, capsys: Any) -> None:
    """v1.2.0 of v1.0.0/v1.2.0/v1.3.0-rc1/v2.0.0 deploys; a new v1.4.0 on the next poll;
    a moved tag and a deleted newest tag deploy as a force-push would."""
    _release(repo, "v1.0.0")
    c2 = _release(repo, "v1.2.0", annotated=True)
    _release(repo, "v1.3.0-rc1")
    _release(repo, "v2.0.0")
    cfg = load_config(flags={"repo": _url(transport, repo, http_git_server, git_daemon_server),
                             "state_dir": str(tmp_path / "state"), "ref": RANGE}, env={})
    syncer = build_syncer(cfg)
    first = syncer.sync()
    assert first.status == "deployed" and first.commit == c2
    assert _deployed(cfg)["tag"] == "v1.2.0" and _deployed(cfg)["ref"] == RANGE
    assert status_dict(cfg)["tag"] == "v1.2.0"
    assert main(["status", "--state-dir", str(cfg.state_dir), "--ref", RANGE]) == 0
    assert f"({RANGE}, tag v1.2.0)" in capsys.readouterr().out

    assert syncer.sync().status == "no_change"
    c5 = _release(repo, "v1.4.0")
    out = syncer.sync()
    assert out.status == "deployed" and out.commit == c5 and out.history_rewritten is False
    assert _deployed(cfg)["tag"] == "v1.4.0"

    repo.force_reset(c2)  # v1.4.0 is re-cut from v1.2.0: the tag moves off the old line
    repo.add_skill("tool", description="tool v1.4.0 re-cut")
    moved = repo.commit("re-cut v1.4.0")
    repo.tag("v1.4.0")
    out = syncer.sync()
    assert out.status == "deployed" and out.commit == moved and out.history_rewritten is True
    assert _deployed(cfg)["tag"] == "v1.4.0" and _deployed(cfg)["history_rewritten"] is True

    run_git("tag", "-d", "v1.4.0", cwd=repo.path)
    out = syncer.sync()
    assert out.status == "deployed" and out.commit == c2 and out.history_rewritten is True
    assert _deployed(cfg)["tag"] == "v1.2.0"
    assert [e["history_rewritten"] for e in _journal(cfg) if e["kind"] == "deployed"] == [
        False, False, True, True]


def test_no_matching_tag_fails_in_one_line(repo: RepoBuilder, tmp_path: Path,
                                           http_git_server: HttpGitServer, capsys: Any) -> None:
    _release(repo, "v1.0.0")
    _release(repo, "v2.0.0")
    code = main(["--once", "--repo", http_git_server.url_for(repo), "--state-dir",
                 str(tmp_path / "state"), "--ref", "semver:>=3"])
    assert code == 1
    lines = [ln for ln in capsys.readouterr().err.splitlines() if "matches 'semver:>=3'" in ln]
    assert len(lines) == 1, lines
    assert "no tag on" in lines[0] and "v2.0.0, v1.0.0" in lines[0]


def test_a_tag_moved_forward_is_no_rewrite(repo: RepoBuilder, tmp_path: Path,
                                           git_daemon_server: GitDaemonServer) -> None:
    """A tag moved to a descendant of the deployed commit is a fast-forward, as on a branch."""
    c1 = _release(repo, "v1.2.0")
    cfg = load_config(flags={"repo": git_daemon_server.url_for(repo),
                             "state_dir": str(tmp_path / "state"), "ref": RANGE}, env={})
    syncer = build_syncer(cfg)
    assert syncer.sync().commit == c1
    repo.add_skill("tool", description="tool v1.2.0, fixed")
    fixed = repo.commit("fix before announcing v1.2.0")
    repo.tag("v1.2.0")  # moved forward, onto a descendant
    out = syncer.sync()
    assert out.status == "deployed" and out.commit == fixed and out.history_rewritten is False
