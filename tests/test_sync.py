"""The core sync path end to end, against real repositories and real dulwich fetches."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from polling import wait_for
from structlog.testing import capture_logs

from skillsyncd.cli import main
from skillsyncd.config import Config, load_config
from skillsyncd.errors import LockBusy, ReleaseError
from skillsyncd.release.releases import Releases
from skillsyncd.release.verify import verify_release
from skillsyncd.sync import stage
from skillsyncd.sync.assembly import build_syncer
from skillsyncd.sync.lock import DeployLock
from skillsyncd.sync.pipeline import Syncer

ROOT = Path(__file__).resolve().parent.parent


def cfg_for(url: str, state: Path, **extra: Any) -> Config:
    return load_config(flags={"repo": url, "state_dir": str(state), **extra}, env={})


def live_skills(cfg: Config) -> dict[str, str]:
    """Live skill -> its SKILL.md, from the release on disk (grouped skills as 'group/skill')."""
    rel = Releases(cfg.state_dir)
    current = rel.current()
    assert current is not None
    root = rel.dir(current)
    names = sorted(s["name"] for s in rel.manifest(current).to_dict()["skills"] if s.get("live"))
    return {n: (root / n / "SKILL.md").read_text() for n in names}


def assert_consistent(cfg: Config) -> str:
    """`current` resolves to a complete release whose files match its manifest."""
    rel = Releases(cfg.state_dir)
    current = rel.current()
    assert current is not None, "current does not point at a complete release"
    assert os.readlink(cfg.current_link) == f"releases/{current}"
    assert verify_release(rel, current) == []
    return current


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "state"


def test_first_sync_then_no_change(repo: Any, state: Path) -> None:
    repo.add_skill("alpha", description="First skill.")
    repo.add_skill("beta", description="Second skill.", extra_files={"scripts/run.sh": "echo hi\n"})
    head = repo.commit("two skills")
    cfg = cfg_for(str(repo.path), state)
    syncer = build_syncer(cfg)
    out = syncer.sync()
    assert out.status == "deployed" and out.commit == head
    assert out.plan.added == ("alpha", "beta")
    current = assert_consistent(cfg)
    assert current.endswith(head[:12])
    assert set(live_skills(cfg)) == {"alpha", "beta"}
    manifest = Releases(state).manifest(current).to_dict()
    assert manifest["commit"] == head and manifest["source"] == str(repo.path)
    assert {s["name"] for s in manifest["skills"]} == {"alpha", "beta"}

    again = syncer.sync()
    assert again.status == "no_change" and again.release == current
    assert Releases(state).complete() == [current]


def test_incremental_sync_rewrites_only_changed_skills(repo: Any, state: Path) -> None:
    for name in ("a", "b", "c"):
        repo.add_skill(name, description=f"Skill {name}.", extra_files={"ref.md": f"{name}\n"})
    repo.commit("three")
    cfg = cfg_for(str(repo.path), state)
    syncer = build_syncer(cfg)
    first = syncer.sync().release
    repo.add_skill("b", description="Skill b, improved.", extra_files={"ref.md": "b\n"})
    repo.remove("c")
    repo.add_skill("d", description="New.")
    repo.commit("change b, drop c, add d")
    out = syncer.sync()
    assert out.plan.changed == ("b",) and out.plan.removed == ("c",)
    assert out.plan.added == ("d",) and out.plan.unchanged == ("a",)
    second = assert_consistent(cfg)
    rel = Releases(state)
    old, new = rel.dir(first or ""), rel.dir(second)
    # unchanged skill: not rebuilt from git; its files are hard links, except SKILL.md,
    # which link mode copies (OpenClaw skips a SKILL.md with more than one link)
    assert os.stat(old / "a/ref.md").st_ino == os.stat(new / "a/ref.md").st_ino
    assert os.stat(new / "a/SKILL.md").st_nlink == 1
    assert (old / "a/SKILL.md").read_bytes() == (new / "a/SKILL.md").read_bytes()
    assert out.plan.to_build == ("b", "d")
    # changed skill: a new file; unchanged supporting file of a changed skill is rewritten
    assert os.stat(old / "b/SKILL.md").st_ino != os.stat(new / "b/SKILL.md").st_ino
    assert "improved" in (new / "b/SKILL.md").read_text()
    assert not (new / "c").exists() and (old / "c").exists()
    assert sorted(p.name for p in new.iterdir()) == ["a", "b", "d"]


def test_release_root_holds_only_skill_folders(repo: Any, state: Path) -> None:
    """Root SKILL.md, loose files, gitlinks, folders without SKILL.md: none are published."""
    repo.write("SKILL.md", "---\nname: root\n---\n")
    repo.write("bundle.zip", b"PK\x03\x04")
    repo.write("notes/readme.md", "not a skill")
    repo.add_skill("real", description="A real skill.")
    repo.add_gitlink("vendored", "1" * 40)
    repo.commit("messy root")
    cfg = cfg_for(str(repo.path), state)
    build_syncer(cfg).sync()
    assert set(live_skills(cfg)) == {"real"}


def test_skills_path_selects_a_subtree(repo: Any, state: Path) -> None:
    repo.add_skill("top", description="Top-level copy.")
    repo.write("skills/inner/SKILL.md", "---\nname: inner\ndescription: Inner.\n---\n")
    repo.commit("two trees")
    cfg = cfg_for(str(repo.path), state, skills_path="skills")
    build_syncer(cfg).sync()
    assert set(live_skills(cfg)) == {"inner"}


def test_missing_skills_path_fails_clearly(repo: Any, state: Path) -> None:
    repo.add_skill("top", description="x")
    repo.commit("c")
    cfg = cfg_for(str(repo.path), state, skills_path="nope")
    code = main(["--once", "--repo", str(repo.path), "--state-dir", str(state),
                 "--skills-path", "nope"])
    assert code == 1
    assert Releases(cfg.state_dir).current() is None


def test_force_push_deploys_new_head_and_records_rewrite(repo: Any, state: Path) -> None:
    repo.add_skill("a", description="v1")
    base = repo.commit("v1")
    repo.add_skill("a", description="v2")
    repo.commit("v2")
    cfg = cfg_for(str(repo.path), state)
    syncer = build_syncer(cfg)
    syncer.sync()
    repo.force_reset(base)
    repo.add_skill("a", description="v2-rewritten")
    rewritten = repo.commit("rewrite")
    out = syncer.sync()
    assert out.status == "deployed" and out.commit == rewritten
    assert out.history_rewritten is True
    assert "v2-rewritten" in live_skills(cfg)["a"]
    manifest = Releases(state).manifest(assert_consistent(cfg)).to_dict()
    assert manifest["history_rewritten"] is True
    events = [json.loads(line) for line in cfg.journal_file.read_text().splitlines()]
    deployed = [e for e in events if e["kind"] == "deployed"]
    assert deployed[-1]["history_rewritten"] is True


def test_fast_forward_is_not_a_rewrite(repo: Any, state: Path) -> None:
    repo.add_skill("a", description="v1")
    repo.commit("v1")
    cfg = cfg_for(str(repo.path), state)
    syncer = build_syncer(cfg)
    syncer.sync()
    for i in range(3):
        repo.add_skill("a", description=f"v{i + 2}")
        repo.commit(f"v{i + 2}")
    out = syncer.sync()
    assert out.history_rewritten is False


def test_ref_can_be_a_tag_or_a_sha(repo: Any, state: Path, tmp_path: Path) -> None:
    repo.add_skill("a", description="tagged")
    tagged = repo.commit("v1")
    repo.tag("v1.0")
    repo.add_skill("a", description="later")
    repo.commit("v2")
    cfg = cfg_for(str(repo.path), state, ref="v1.0")
    out = build_syncer(cfg).sync()
    assert out.commit == tagged and "tagged" in live_skills(cfg)["a"]
    cfg2 = cfg_for(str(repo.path), tmp_path / "s2", ref=tagged)
    out2 = build_syncer(cfg2).sync()
    assert out2.commit == tagged


def test_unknown_ref_is_a_clear_failure(repo: Any, state: Path, capsys: Any) -> None:
    repo.add_skill("a", description="x")
    repo.commit("c")
    code = main(["--once", "--repo", str(repo.path), "--state-dir", str(state), "--ref", "nope"])
    assert code == 1
    assert "ref 'nope' not found" in capsys.readouterr().err


def test_missing_repo_is_config_error_exit_2(state: Path, capsys: Any,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SKILLSYNC_REPO", raising=False)
    code = main(["--once", "--state-dir", str(state)])
    err = capsys.readouterr().err
    assert code == 2 and "SKILLSYNC_REPO" in err and "Traceback" not in err


def test_rollback_to_previous_and_marks_commit_bad(repo: Any, state: Path) -> None:
    repo.add_skill("a", description="one")
    repo.commit("one")
    cfg = cfg_for(str(repo.path), state)
    syncer = build_syncer(cfg)
    first = syncer.sync().release
    repo.add_skill("a", description="two")
    second_commit = repo.commit("two")
    syncer.sync()
    out = syncer.rollback()
    assert out.release == first and assert_consistent(cfg) == first
    assert "one" in live_skills(cfg)["a"]
    # the daemon must not redeploy the commit we just left
    again = syncer.sync()
    assert again.status == "skipped_bad" and Releases(state).current() == first
    state_json = json.loads(cfg.state_file.read_text())
    assert second_commit in state_json["bad_commits"]
    # --force redeploys it by hand
    forced = syncer.sync(force=True)
    assert forced.status == "deployed" and forced.commit == second_commit


def test_rollback_to_named_release_and_unknown_release(repo: Any, state: Path) -> None:
    cfg = cfg_for(str(repo.path), state)
    syncer = build_syncer(cfg)
    releases = []
    for i in range(3):
        repo.add_skill("a", description=f"v{i}")
        repo.commit(f"v{i}")
        releases.append(syncer.sync().release)
    syncer.rollback(to=releases[0])
    assert Releases(state).current() == releases[0]
    with pytest.raises(ReleaseError):
        syncer.rollback(to="20000101T000000Z-000000000000")


def test_retention_keeps_n_and_never_the_current(repo: Any, state: Path) -> None:
    cfg = cfg_for(str(repo.path), state)
    cfg = load_config(flags={"repo": str(repo.path), "state_dir": str(state)},
                      env={"SKILLSYNC_KEEP_RELEASES": "3"})
    syncer = build_syncer(cfg)
    made = []
    for i in range(6):
        repo.add_skill("a", description=f"v{i}")
        repo.commit(f"v{i}")
        made.append(syncer.sync().release)
    kept = Releases(state).complete()
    assert kept == made[-3:]
    # roll back to the oldest kept, then deploy more: the live one survives retention
    syncer.rollback(to=made[-3])
    for i in range(6, 9):
        repo.add_skill("a", description=f"v{i}")
        repo.commit(f"v{i}")
        syncer.sync()
    assert len(Releases(state).complete()) == 3
    assert_consistent(cfg)


def test_lock_busy_exits_3_naming_the_holder(repo: Any, state: Path, capsys: Any,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SKILLSYNC_LOCK_TIMEOUT", "0.3")
    repo.add_skill("a", description="x")
    repo.commit("c")
    cfg = load_config(flags={"repo": str(repo.path), "state_dir": str(state)},
                      env={"SKILLSYNC_LOCK_TIMEOUT": "0.3"})
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from filelock import FileLock; "
         "from pathlib import Path; p = Path(sys.argv[1]); p.parent.mkdir(parents=True, exist_ok=True); "
         "l = FileLock(str(p)); l.acquire(); "
         "Path(str(p) + '.owner').write_text('4242\\n'); print('held', flush=True); time.sleep(30)",
         str(cfg.lock_file)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(LockBusy, match="pid 4242"):
            Syncer(cfg).sync()
        code = main(["--once", "--repo", str(repo.path), "--state-dir", str(state)])
        assert code == 3
        assert "pid 4242" in capsys.readouterr().err
    finally:
        holder.kill()
        holder.wait()
    assert Syncer(cfg).sync().status == "deployed"


def test_second_syncer_waits_for_the_first(repo: Any, state: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    repo.add_skill("a", description="x")
    repo.commit("c")
    cfg = cfg_for(str(repo.path), state)
    results: list[str] = []
    refused: list[bool] = []  # the second syncer's lock attempts, after each one
    with DeployLock(cfg) as held:
        lock_type = type(held._lock)
        real_acquire = lock_type._acquire

        def counting(self: Any) -> None:
            real_acquire(self)
            if threading.current_thread().name == "second-syncer":
                refused.append(not self.is_locked)

        monkeypatch.setattr(lock_type, "_acquire", counting)
        t = threading.Thread(target=lambda: results.append(build_syncer(cfg).sync().status),
                             name="second-syncer")
        t.start()
        # Proof of waiting, not a pause: it has tried the lock three times and been refused.
        wait_for(lambda: len(refused) >= 3, what="three refused lock attempts")
        assert all(refused) and results == [] and t.is_alive()
    t.join(10)
    assert results == ["deployed"]


def test_demo_script_runs(tmp_path: Path) -> None:
    """`make demo` end to end (the script it runs), against a throwaway copy of the repo root."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "demo.py")], cwd=ROOT,
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "held back half-done" in proc.stderr
    assert "(4 skills live: +0 ~1 -0 =3; 1 held back)" in proc.stderr  # incremental; counts what went live
    assert "4 live, held back: half-done" in proc.stdout


# --- crash consistency ---------------------------------------------------------------

CRASH_POINTS = ["before-stage", "mid-stage", "mid-place", "mid-link", "manifest-write", "before-flip",
                "after-flip", "before-state", "before-prune"]


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_kill_9_at_each_step_leaves_current_complete_and_converges(
    repo: Any, state: Path, point: str
) -> None:
    repo.add_skill("a", description="one", extra_files={"x.txt": "1"})
    repo.add_skill("b", description="one")
    repo.commit("one")
    cfg = cfg_for(str(repo.path), state)
    first = build_syncer(cfg).sync().release
    repo.add_skill("b", description="two", extra_files={"y.txt": "2"})
    repo.add_skill("c", description="new")
    head = repo.commit("two")

    proc = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "crashpoint.py"), point,
         "--once", "--repo", str(repo.path), "--state-dir", str(state)],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == -9, f"{point}: not killed ({proc.returncode}) {proc.stderr}"
    current = assert_consistent(cfg)
    assert current in (first, Releases(state).complete()[-1])
    # the journal has no torn line
    for line in cfg.journal_file.read_text().splitlines():
        json.loads(line)

    out = build_syncer(cfg).sync()
    assert out.status in ("deployed", "no_change")
    final = assert_consistent(cfg)
    assert final.endswith(head[:12])
    assert set(live_skills(cfg)) == {"a", "b", "c"}
    leftovers = [p.name for p in Releases(state).root.iterdir()
                 if not (Releases(state).manifest_path(p.name.removesuffix(".json")).exists())]
    assert leftovers == []
    store = Releases(state).store
    assert not store.work.exists() or list(store.work.iterdir()) == []
    assert store.shas() == Releases(state).referenced()  # nothing orphaned by the crash


def test_allowlist_in_the_repository_lets_a_known_false_positive_through(
    repo: Any, state: Path
) -> None:
    fake = "gh" + "p_" + "aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5"  # made up, GitHub token shape
    repo.add_skill("curl-demo", description="Shows an API call.",
                   extra_files={"ref.md": f"export GH={fake}\n"})
    repo.add_skill("plain", description="Nothing to see.")
    repo.commit("a skill that embeds a token-shaped string")
    cfg = cfg_for(str(repo.path), state)
    syncer = build_syncer(cfg)
    out = syncer.sync()
    assert "curl-demo" in out.held_back and "plain" in live_skills(cfg)
    assert any("secret." in r for r in out.held_back["curl-demo"])

    repo.write(".skillsync-allow", "# test value from the docs\ncurl-demo/ref.md:secret.github-pat\n")
    repo.commit("allow the documented test value")
    out = syncer.sync()
    assert out.status == "deployed" and not out.held_back
    assert set(live_skills(cfg)) == {"curl-demo", "plain"}


def test_once_and_manual_rollback_run_the_post_publish_hook(
    repo: Any, state: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = tmp_path / "hook.log"
    script = tmp_path / "hook.sh"
    script.write_text(f'#!/bin/sh\necho "$SKILLSYNC_EVENT $SKILLSYNC_RELEASE" >> {record}\n')
    script.chmod(0o755)
    monkeypatch.setenv("SKILLSYNC_HOOK_COMMAND", str(script))
    args = ["--repo", str(repo.path), "--state-dir", str(state)]
    repo.add_skill("alpha", description="One.")
    repo.commit("one")
    assert main(["--once", *args]) == 0
    first = Releases(state).current()
    repo.add_skill("beta", description="Two.")
    repo.commit("two")
    assert main(["--once", *args]) == 0
    second = Releases(state).current()
    assert main(["--once", *args]) == 0  # no change: no hook
    assert main(["rollback", "--state-dir", str(state), "--repo", str(repo.path)]) == 0
    assert record.read_text().splitlines() == [
        f"deployed {first}", f"deployed {second}", f"manual_rollback {first}",
    ]


def test_repository_shaped_like_the_users_syncs_cleanly(repo: Any, state: Path) -> None:
    """The user's layout: root SKILL.md, a parallel skills/ tree, gitlinks without .gitmodules,
    committed __pycache__, zip files, MB-sized assets, an unquoted ': ', names with spaces."""
    import random

    noise = random.Random(7).randbytes(4 * 1024 * 1024)  # an incompressible 4 MB asset
    repo.write("SKILL.md", "# Kurultai\nThe whole council.\n")
    repo.write("kurultai-skills.zip", b"PK\x03\x04" + noise[:4096])
    for i in range(3):
        repo.add_gitlink(f"vendor-{i}", f"{i + 1}" * 40)
    for root in ("", "skills/"):
        repo.write(f"{root}researcher/SKILL.md",
                   "---\nname: researcher\ndescription: Finds sources.\n---\nBody\n")
        repo.write(f"{root}researcher/__pycache__/helper.cpython-312.pyc", b"\x00\x01")
        repo.write(f"{root}researcher/assets/briefing.mp3", noise)
        repo.write(f"{root}writer/SKILL.md",
                   "---\nname: Content Writer\ndescription: Writes drafts.\nversion: '1.0'\n---\n")
        repo.write(f"{root}planner/SKILL.md",
                   "---\nname: planner\ndescription: Plans: step by step\n---\n")
    repo.write("legacy/skill.yaml", "name: legacy\n")
    repo.write("legacy/prompts/main.md", "# prompt\n")
    repo.write("group/deep/SKILL.md", "---\nname: deep\ndescription: Two levels down.\n---\n")
    repo.commit("the user's layout")

    for skills_path in ("", "skills"):
        cfg = cfg_for(str(repo.path), state / (skills_path or "root"), skills_path=skills_path)
        out = build_syncer(cfg).sync()
        assert out.status == "deployed"
        # planner's unquoted ': ' is strict-YAML invalid, but the gateway reads it: it deploys.
        # group/deep is a grouped skill, as the gateway discovers them.
        expected = {"researcher", "writer", "planner"} | ({"group/deep"} if not skills_path else set())
        assert set(live_skills(cfg)) == expected
        assert out.held_back == {}
        assert any(f.rule == "yaml.recovered" and f.path.endswith("planner/SKILL.md")
                   for f in out.findings)
        # Nothing left out in silence: each entry not deployed has a finding, in the manifest too.
        rel = Releases(cfg.state_dir)
        layout = {(f.rule, f.path) for f in rel.manifest(rel.current() or "").layout}
        if not skills_path:
            assert {("layout.root-skill-md", "SKILL.md"), ("layout.skills-subfolder", "skills"),
                    ("layout.not-a-skill", "legacy")} <= layout
            assert {p for r, p in layout if r == "layout.gitlink"} == {f"vendor-{i}" for i in range(3)}
        current = assert_consistent(cfg)
        published = Releases(cfg.state_dir).dir(current)
        assert (published / "researcher" / "assets" / "briefing.mp3").stat().st_size == len(noise)
        assert not (published / "SKILL.md").exists()
        # Compiled caches are left out by the default ignore rules, and said so.
        assert not (published / "researcher" / "__pycache__").exists()
        assert any(f["rule"] == "layout.ignored" and "__pycache__" in f["message"]
                   for f in Releases(cfg.state_dir).manifest(current).to_dict()["layout"])


def test_status_json_stays_parseable_when_state_json_is_corrupt(
    repo: Any, state: Path, capsys: Any
) -> None:
    repo.add_skill("alpha", description="One.")
    repo.commit("one")
    args = ["--repo", str(repo.path), "--state-dir", str(state)]
    assert main(["--once", *args]) == 0
    (state / "state.json").write_text("{not json")
    capsys.readouterr()
    assert main(["status", "--json", *args]) == 0
    out, err = capsys.readouterr()
    doc = json.loads(out)  # the log line about the damaged file went to stderr
    assert doc["current_release"] == Releases(state).current()
    assert "state" in err


def test_a_held_back_skill_is_judged_once_per_version(repo: Any, state: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Pushed again unchanged, a held-back skill keeps its verdict: not re-scanned, not re-logged."""
    fake = "gh" + "p_" + "aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5"  # made up, GitHub token shape
    repo.add_skill("leaky", description="Holds a token.", extra_files={"ref.md": f"GH={fake}\n"})
    repo.add_skill("plain", description="one")
    repo.commit("a held-back skill")
    cfg = cfg_for(str(repo.path), state)
    syncer = build_syncer(cfg)
    judged: list[str] = []
    real = stage.validate_one

    def counting(cfg: Any, skill: Any, *args: Any, **kwargs: Any) -> Any:
        judged.append(skill.name)
        return real(cfg, skill, *args, **kwargs)

    monkeypatch.setattr(stage, "validate_one", counting)
    first = syncer.sync()
    assert "leaky" in first.held_back and judged == ["leaky", "plain"]
    repo.add_skill("plain", description="two")
    repo.commit("another skill changes")
    with capture_logs() as logs:
        second = syncer.sync()
    assert second.status == "deployed" and "leaky" in second.held_back
    assert judged == ["leaky", "plain", "plain"]  # leaky's same bytes were not judged again
    assert not [e for e in logs if e["event"] == "validation_finding" and "leaky" in e["path"]]
    assert [e["skills"] for e in logs if e["event"] == "still_held_back"] == [["leaky"]]
    # README: an unchanged held-back skill is only counted in still_held_back, not warned again
    assert not [e for e in logs if e["event"] == "skill_held_back"]
    manifest = Releases(state).manifest(second.release or "")
    record = next(s for s in manifest.skills if s.name == "leaky")
    assert record.status == "held_back" and any(f.rule.startswith("secret.") for f in record.findings)
    # new bytes, or new rules, are judged again
    repo.add_skill("leaky", description="Still holds a token.", extra_files={"ref.md": f"GH={fake}\n"})
    repo.commit("leaky changes")
    with capture_logs() as logs:
        syncer.sync()
    assert judged[-1] == "leaky"
    # new bytes still held back are news: one warning naming the skill
    assert [e["skill"] for e in logs if e["event"] == "skill_held_back"] == ["leaky"]
