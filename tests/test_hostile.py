"""Hostile repository content, end to end: a real sync refuses it, writes nowhere else, stays small.

The commits are built with dulwich object-store writes, so trees git itself would
refuse to create (``..`` entries, absolute names, ``.GIT`` folders, newlines) are
possible. Each case adds one hostile skill, ``evil``, next to a good one, pushes it,
and runs ``skillsyncd --once`` as a real process over smart HTTP (git's own
http-backend serves it). Then:

* ``evil`` is held back by the named rule, and the finding names the offending path;
* the good skill is live and the release holds only regular files and folders;
* nothing changed outside the state dir (the tree around it is snapshotted);
* the process's peak RSS (``ru_maxrss``, i.e. VmHWM, from wait4) stays under a
  generous bound: memory, not time, is what is asserted.

test_validation_rules.py checks each rule on in-memory entries; this file checks
that the whole pipeline (fetch, snapshot, validation, stage) holds the line.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Union

import pytest
from dulwich.objects import Blob, Commit, ObjectID, Tree
from dulwich.repo import Repo
from gitserver import GitRoot, HttpGitServer, RepoBuilder, run_git
from test_daemon import SKILLSYNCD, Daemon, _clean_env

from skillsyncd.daemon.webhook import sign
from skillsyncd.release.releases import Releases
from skillsyncd.release.verify import verify_release

# A tree spec: name -> file bytes | (mode, bytes) | nested spec | ("gitlink", sha) | ("tree", id)
Spec = dict[bytes, Union[bytes, tuple[int, bytes], "Spec", tuple[str, bytes]]]

GOOD_MD = b"---\nname: good\ndescription: A good skill.\n---\nBody.\n"
RSS_BOUND_KB = 400 * 1024  # a plain sync peaks near 60-90 MB; 400 MB is "bounded", generously


def md(extra: str = "") -> bytes:
    return f"---\nname: evil\ndescription: Hostile.\n{extra}---\nBody.\n".encode()


def write_tree(repo: Repo, spec: Spec) -> bytes:
    tree = Tree()
    for name, value in spec.items():
        if isinstance(value, dict):
            tree.add(name, 0o040000, write_tree(repo, value))
        elif isinstance(value, tuple) and value[0] == "gitlink":
            tree.add(name, 0o160000, value[1])  # type: ignore[arg-type]
        elif isinstance(value, tuple) and value[0] == "tree":  # a tree already in the store
            tree.add(name, 0o040000, value[1])  # type: ignore[arg-type]
        else:
            mode, data = value if isinstance(value, tuple) else (0o100644, value)
            blob = Blob.from_string(data)  # type: ignore[arg-type]
            repo.object_store.add_object(blob)
            tree.add(name, mode, blob.id)  # type: ignore[arg-type]
    repo.object_store.add_object(tree)
    return tree.id


def push_tree(origin: RepoBuilder, spec: Spec) -> str:
    """Commit ``spec`` as the whole tree on top of main, with dulwich (no checks at all)."""
    repo = Repo(str(origin.path))
    try:
        parent = repo.refs[b"refs/heads/main"]
        commit = Commit()
        commit.tree = write_tree(repo, spec)
        commit.parents = [parent]
        commit.author = commit.committer = b"Mallory <mallory@example.invalid>"
        commit.author_time = commit.commit_time = int(time.time()) + 10
        commit.author_timezone = commit.commit_timezone = 0
        commit.message = b"hostile\n"
        repo.object_store.add_object(commit)
        repo.refs[b"refs/heads/main"] = commit.id
        return commit.id.decode()
    finally:
        repo.close()


def snapshot(root: Path, skip: tuple[Path, ...]) -> dict[str, tuple[int, int, int]]:
    """Every path under root (not following links) with its type, size and mtime."""
    out: dict[str, tuple[int, int, int]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if Path(dirpath, d) not in skip]
        for name in dirnames + filenames:
            p = Path(dirpath, name)
            st = p.lstat()
            out[str(p.relative_to(root))] = (stat.S_IFMT(st.st_mode), st.st_size, st.st_mtime_ns)
    return out


# Runs argv as its only child and reports that child's peak RSS (ru_maxrss, KB on Linux,
# the same figure as /proc/<pid>/status VmHWM) on stderr once it exits.
PEAK = (
    "import resource, subprocess, sys\n"
    "code = subprocess.run(sys.argv[1:]).returncode\n"
    "print('VmHWM-KB', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def run_sync(url: str, state: Path, env: dict[str, str] | None = None,
             timeout: float = 120) -> tuple[int, str, str, int]:
    """`skillsyncd --once` as a child; returns exit code, stdout, stderr and peak RSS in KB."""
    proc = subprocess.run([sys.executable, "-c", PEAK, SKILLSYNCD, "--once", "--repo", url,
                           "--state-dir", str(state)],
                          env=_clean_env(env or {}), capture_output=True, text=True,
                          timeout=timeout)
    rss = [int(line.split()[1]) for line in proc.stderr.splitlines()
           if line.startswith("VmHWM-KB ")]
    assert rss, proc.stderr[-2000:]
    return proc.returncode, proc.stdout, proc.stderr, rss[-1]


@pytest.fixture(scope="module")
def hostile(_http_git_server_session: HttpGitServer, git_root: GitRoot,
            tmp_path_factory: pytest.TempPathFactory) -> Callable[..., dict[str, Any]]:
    """Deploy a good skill once; each call pushes ``{good, **top}`` on top and syncs.

    One origin and one state dir serve the whole module, which also shows that a
    refused commit never poisons the next one.
    """
    tmp_path = tmp_path_factory.mktemp("hostile")
    repo = RepoBuilder(tmp_path / "origin", name="hostile-origin")
    git_root.register(repo)
    repo.add_skill("good", description="A good skill.")
    repo.commit("good")
    url = _http_git_server_session.url_for(repo)
    around = tmp_path / "around"
    state = around / "state"
    bait = around / "bait"
    (bait / "etc").mkdir(parents=True)
    (bait / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    code, _, err, _ = run_sync(url, state)
    assert code == 0, err
    # Each call replaces the whole tree, which may remove most live skills: allowed here.
    replace_all = {"SKILLSYNC_ALLOW_MASS_REMOVAL": "true"}

    def go(top: Spec) -> dict[str, Any]:
        head = push_tree(repo, {b"good": {b"SKILL.md": GOOD_MD}, **top})
        before = snapshot(around, skip=(state,))
        started = time.monotonic()
        code, out, err, rss = run_sync(url, state, env=replace_all)
        took = time.monotonic() - started
        assert snapshot(around, skip=(state,)) == before, "something was written outside the state dir"
        # The bait tree is this test's own sandbox around the state dir: a canary that a
        # path escape (../, an absolute name, a link) would hit instead of a host file.
        assert (bait / "etc" / "passwd").read_text() == "root:x:0:0::/root:/bin/sh\n"
        releases = Releases(state)
        current = releases.current()
        assert current is not None
        manifest = releases.manifest(current).to_dict()
        assert manifest["commit"] == head, err
        assert verify_release(releases, current) == []
        root = releases.dir(current)
        for dirpath, dirnames, filenames in os.walk(root):
            for name in dirnames + filenames:
                p = Path(dirpath, name)
                assert not p.is_symlink(), p
                assert stat.S_ISDIR(p.lstat().st_mode) or stat.S_ISREG(p.lstat().st_mode), p
                assert p.resolve().is_relative_to(root.resolve())
        records = {s["name"]: s for s in manifest["skills"]}
        assert records["good"]["live"] is True
        return {"code": code, "out": out, "err": err, "rss_kb": rss, "seconds": took,
                "manifest": manifest, "records": records, "root": root}

    return go


def findings_of(result: dict[str, Any], skill: str) -> list[dict[str, Any]]:
    record = result["records"].get(skill)
    if record is None:  # not a skill at all (discovery left it out): named in the layout list
        layout = [f for f in result["manifest"].get("layout", []) if f["path"] == skill]
        assert layout, f"{skill} is neither in the manifest's skills nor in its layout list"
        assert not (result["root"] / skill).exists(), f"{skill} was staged"
        return layout
    assert record["status"] == "held_back" and record["live"] is False, record
    assert not (result["root"] / skill).exists(), f"{skill} was staged"
    return list(record["findings"])


def assert_refused(result: dict[str, Any], skill: str, rule: str, path_part: str) -> None:
    assert result["code"] == 0, result["err"]  # policy skip: the rest deploys
    found = findings_of(result, skill)
    hits = [f for f in found if f["rule"] == rule]
    assert hits, f"no {rule} finding; got {[(f['rule'], f['path']) for f in found]}"
    assert any(path_part in (f["path"] or "") + " " + f["message"] for f in hits), hits
    # the refusal is on the operator's screen too: a validation_finding log line per finding
    logged = [json.loads(line) for line in result["out"].splitlines() if line.startswith("{")]
    assert any(e.get("event") == "validation_finding" and e.get("rule") == rule
               and path_part in e.get("path", "") + e.get("message", "") for e in logged)


CASES: dict[str, tuple[Spec, str, str]] = {
    "dotdot": ({b"SKILL.md": md(), b"..": {b"..": {b"escape.txt": b"pwned\n"}}},
               "path.dotdot", "evil/../../escape.txt"),
    "dotdot-in-name": ({b"SKILL.md": md(), b"ok": {b"..": {b"x": b"y"}}},
                       "path.dotdot", "evil/ok/../x"),
    # A tree entry named '/tmp' is a name holding '/', which no filesystem name can be.
    "absolute": ({b"SKILL.md": md(), b"/tmp": {b"pwned": b"x"}}, "path.slash", "evil/\\x2ftmp"),
    "dot-git": ({b"SKILL.md": md(), b".git": {b"config": b"[core]\n\tfsmonitor = evil\n"}},
                "path.dot-git", "evil/.git/config"),
    "dot-GIT": ({b"SKILL.md": md(), b".GIT": {b"hooks": {b"post-checkout": (0o100755, b"#!/bin/sh\n")}}},
                "path.dot-git", "evil/.GIT/hooks"),
    "symlink-passwd": ({b"SKILL.md": md(), b"passwd": (0o120000, b"/etc/passwd")},
                       "path.symlink", "evil/passwd"),
    "symlink-up": ({b"SKILL.md": md(), b"up": (0o120000, b"../../..")}, "path.symlink", "evil/up"),
    "symlink-skill-md": ({b"SKILL.md": (0o120000, b"/etc/passwd")}, "skill-md.missing", "evil"),
    "gitlink": ({b"SKILL.md": md(), b"vendor": ("gitlink", b"1" * 40)}, "path.gitlink",
                "evil/vendor"),
    "alias-bomb": ({b"SKILL.md": (
        b"---\nname: evil\ndescription: bomb\n"
        + b"".join(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}' if i else 'x'] * 9)}]\n".encode()
                   for i in range(12))
        + b"---\n")}, "yaml.limits", "evil/SKILL.md"),
    "duplicate-keys": ({b"SKILL.md": md("name: other\n")}, "yaml.duplicate-key", "evil/SKILL.md"),
    "frontmatter-10mb": ({b"SKILL.md": b"---\nname: evil\ndescription: " + b"a" * 10_000_000
                          + b"\n---\n"}, "size.skill-md", "evil/SKILL.md"),
    "newline-name": ({b"SKILL.md": md(), b"a\nb.txt": b"x"}, "path.control-char", "evil/a"),
    "escape-name": ({b"SKILL.md": md(), b"\x1b[31mred.txt": b"x"}, "path.control-char",
                    "\\x1b"),
    "bad-utf8-name": ({b"SKILL.md": md(), b"caf\xe9.txt": b"x"}, "path.encoding", "evil/caf"),
    "case-collision": ({b"SKILL.md": md(), b"README.md": b"a", b"readme.md": b"b"},
                       "path.case-collision", "readme.md"),
    # A folder named SKILL.md: not a skill for the gateway either; said in the layout list.
    "skill-md-is-a-folder": ({b"SKILL.md": {b"x": b"y"}}, "layout.not-a-skill", "evil"),
    "backslash": ({b"SKILL.md": md(), b"..\\..\\win.ini": b"x"}, "path.backslash", "win.ini"),
    "odd-mode": ({b"SKILL.md": md(), b"odd": (0o100664, b"x")}, "path.mode", "evil/odd"),
}




@pytest.fixture(scope="module")
def corpus(hostile: Callable[[Spec], dict[str, Any]]) -> dict[str, Any]:
    """Every case as its own skill folder, ``evil-<case>``, in one hostile commit."""
    return hostile({f"evil-{case}".encode(): spec for case, (spec, _, _) in CASES.items()})


def test_the_hostile_commit_deploys_only_the_good_skill_in_bounded_memory(
    corpus: dict[str, Any]
) -> None:
    assert corpus["code"] == 0, corpus["err"]
    assert {p.name for p in corpus["root"].iterdir()} == {"good"}
    assert corpus["rss_kb"] < RSS_BOUND_KB, f"peak RSS {corpus['rss_kb']} KB"
    print(f"hostile corpus: peak RSS {corpus['rss_kb'] // 1024} MB, sync {corpus['seconds']:.1f} s")
    not_skills = {f"evil-{c}" for c, (_, rule, _) in CASES.items() if rule.startswith("layout.")}
    assert set(corpus["manifest"]["validation"]["held_back"]) == {f"evil-{c}" for c in CASES} - not_skills


@pytest.mark.parametrize("case", list(CASES))
def test_hostile_skill_is_refused_by_a_named_rule(case: str, corpus: dict[str, Any]) -> None:
    _, rule, path_part = CASES[case]
    skill = f"evil-{case}"
    assert_refused(corpus, skill, rule, path_part.replace("evil", skill, 1))


def test_bytes_the_gateway_reads_are_warnings_not_refusals(
    hostile: Callable[..., dict[str, Any]]
) -> None:
    """Invalid UTF-8 and NUL bytes in SKILL.md: OpenClaw reads them (U+FFFD), so they deploy."""
    result = hostile({
        b"odd-utf8": {b"SKILL.md": md().replace(b"Hostile", b"Host\xff\xfeile")},
        b"odd-nul": {b"SKILL.md": md().replace(b"Body", b"Bo\x00dy")},
    })
    assert result["code"] == 0, result["err"]
    for skill, rule in (("odd-utf8", "skill-md.encoding"), ("odd-nul", "skill-md.nul")):
        record = result["records"][skill]
        assert record["live"] is True and record["status"] == "ok", record
        assert [w["severity"] for w in record["warnings"] if w["rule"] == rule] == ["warning"]


def test_hostile_top_level_names_never_become_folders(
    hostile: Callable[..., dict[str, Any]]
) -> None:
    """Skill folders named '..', '.git', in bad UTF-8, or not a folder at all are not skills."""
    good_md: Spec = {b"SKILL.md": md()}
    result = hostile({
        b"evil": good_md, b"..": good_md, b".git": good_md, b".GIT": good_md, b"bad\xff": good_md,
        b"not-a-folder": b"---\nname: x\n---\n", b"link": (0o120000, b"/etc"),
        b"sub": ("gitlink", b"2" * 40),
    })
    assert result["code"] == 0, result["err"]
    staged = {p.name for p in result["root"].iterdir()}
    assert staged == {"good", "evil"}, staged
    assert result["rss_kb"] < RSS_BOUND_KB


def test_skill_folder_names_with_control_characters_are_refused(
    hostile: Callable[..., dict[str, Any]]
) -> None:
    good_md: Spec = {b"SKILL.md": md()}
    result = hostile({b"evil": good_md, b"new\nline": good_md, b"esc\x1b": good_md})
    staged = {p.name for p in result["root"].iterdir()}
    assert staged == {"good", "evil"}, staged


@pytest.mark.e2e  # ~15 s: 100,000 tree entries through fetch, snapshot and validation
def test_a_hundred_thousand_files_are_refused_from_the_tree_alone(
    hostile: Callable[[Spec], dict[str, Any]]
) -> None:
    many: Spec = {f"f{i:06d}.txt".encode(): b"same bytes\n" for i in range(100_000)}
    result = hostile({b"evil-many": {b"SKILL.md": md(), b"many": many}})
    assert_refused(result, "evil-many", "size.files", "evil-many")
    assert result["rss_kb"] < RSS_BOUND_KB, f"peak RSS {result['rss_kb']} KB"
    print(f"100,000 files: peak RSS {result['rss_kb'] // 1024} MB, sync {result['seconds']:.1f} s")


# --- a 1 GiB blob (make e2e: git needs ~20 s to hash and deflate it, the sync ~20 s more) ----


@pytest.fixture(scope="module")
def huge_blob_sync(_http_git_server_session: HttpGitServer, git_root: GitRoot,
                   tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp_path = tmp_path_factory.mktemp("huge")
    repo = RepoBuilder(tmp_path / "origin", name="huge-origin")
    git_root.register(repo)
    repo.add_skill("good", description="A good skill.")
    repo.add_skill("evil", description="Carries a 1 GiB file.")
    huge = repo.path / "evil" / "huge.bin"
    with open(huge, "wb") as fh:  # sparse: cheap on disk, 1 GiB of zeros to git
        fh.truncate(1 << 30)
    run_git("add", "evil/huge.bin", cwd=repo.path)
    head = repo.commit("a 1 GiB blob")
    blob = repo.rev_parse("HEAD:evil/huge.bin")
    huge.unlink()
    state = tmp_path / "around" / "state"
    state.parent.mkdir()
    before = snapshot(state.parent, skip=(state,))
    code, out, err, rss = run_sync(_http_git_server_session.url_for(repo), state, timeout=600)
    assert snapshot(state.parent, skip=(state,)) == before
    releases = Releases(state)
    current = releases.current()
    assert current is not None, err
    manifest = releases.manifest(current).to_dict()
    mirror = Repo(str(state / "mirror.git"))
    try:
        in_mirror = ObjectID(blob.encode()) in mirror.object_store
    finally:
        mirror.close()
    return {"code": code, "out": out, "err": err, "rss_kb": rss, "head": head,
            "blob_in_mirror": in_mirror,
            "manifest": manifest, "root": releases.dir(current),
            "records": {s["name"]: s for s in manifest["skills"]}}


@pytest.mark.e2e
def test_a_1_gib_blob_is_refused_by_size_without_being_staged(huge_blob_sync: dict[str, Any]) -> None:
    result = huge_blob_sync
    assert result["manifest"]["commit"] == result["head"]
    assert_refused(result, "evil", "size.file", "evil/huge.bin")
    assert {p.name for p in result["root"].iterdir()} == {"good"}


@pytest.mark.e2e
def test_a_1_gib_blob_does_not_cost_a_gib_of_memory(huge_blob_sync: dict[str, Any]) -> None:
    """The fetch filter (blob:limit, source.py) keeps the blob on the server: dulwich, which
    inflates each object of a pack whole, never sees it (1,120 MB peak before the filter)."""
    assert huge_blob_sync["rss_kb"] < RSS_BOUND_KB, f"peak RSS {huge_blob_sync['rss_kb']} KB"
    assert not huge_blob_sync["blob_in_mirror"], "the 1 GiB blob was downloaded"
    print(f"1 GiB blob: peak RSS {huge_blob_sync['rss_kb'] // 1024} MB")


# --- hostile webhook traffic -------------------------------------------------------------------
# test_daemon.py covers bad and missing signatures, replays and oversized bodies one by one;
# these add a flood of valid pushes and connections that never finish their body.

HOOK_SECRET = "flood-test-secret"


def _push(d: Daemon, delivery: str) -> int:
    body = json.dumps({"ref": "refs/heads/main"}).encode()
    return d.post("/webhook/github", body, {
        "X-GitHub-Event": "push", "X-GitHub-Delivery": delivery,
        "X-Hub-Signature-256": sign(HOOK_SECRET, body), "Content-Type": "application/json"})[0]


@pytest.fixture
def hook_daemon(repo: RepoBuilder, tmp_path: Path) -> Iterator[Daemon]:
    repo.add_skill("alpha", description="first")
    head = repo.commit("v1")
    d = Daemon([SKILLSYNCD, "run", "--repo", str(repo.path), "--state-dir", str(tmp_path / "s"),
                "--http-bind", "127.0.0.1:0"],
               _clean_env({"SKILLSYNC_INTERVAL": "600", "GITHUB_WEBHOOK_SECRET": HOOK_SECRET}))
    try:
        d.wait_event(lambda e: e.get("event") == "sync_finished" and e.get("commit") == head)
        yield d
    finally:
        d.kill()


def test_a_flood_of_valid_pushes_runs_a_bounded_number_of_syncs(
    hook_daemon: Daemon, repo: RepoBuilder
) -> None:
    d = hook_daemon
    repo.add_skill("alpha", description="second")
    head = repo.commit("v2")
    mark = len(d.events)
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=8) as pool:
        codes = list(pool.map(lambda i: _push(d, f"flood-{i}"), range(120)))
    window = time.monotonic() - started
    assert codes == [202] * 120  # every push is accepted...
    d.wait_event(lambda e: e.get("event") == "sync_finished" and e.get("commit") == head,
                 start=mark, timeout=15)
    # ...but work is bounded. Each push logs trigger_received before its "webhook" line,
    # and only a trigger that found nothing pending (coalesced=false) ever becomes a sync:
    # the rest merge into it (daemon/schedule.py). So once all 120 lines are in, the
    # syncs this flood will ever cause are counted, without waiting to see none come.
    d.wait_event(lambda e: sum(x.get("event") == "webhook" for x in d.events[mark:]) >= 120,
                 start=mark)
    queued = [e for e in d.events[mark:]
              if e.get("event") == "trigger_received" and e.get("coalesced") is False]
    # a burst of 3 event-triggered syncs, one more per 5 s earned, one pending follow-up
    bound = 3 + int(window / 5.0) + 1
    assert 1 <= len(queued) <= bound, (len(queued), window)
    # and each queued trigger runs exactly one sync (the last may wait for a token)
    d.wait_event(lambda e: sum(x.get("event") == "next_sync" for x in d.events[mark:])
                 >= len(queued), start=mark, timeout=30)
    syncs = [e for e in d.events[mark:] if e.get("event") == "sync_started"]
    assert len(syncs) == len(queued)
    assert d.get("/healthz")[0] == 200 and d.proc.poll() is None


def test_slow_bodies_do_not_block_health_or_real_pushes(
    hook_daemon: Daemon, repo: RepoBuilder
) -> None:
    d = hook_daemon
    host, port = d.base.removeprefix("http://").rsplit(":", 1)
    slow: list[socket.socket] = []
    try:
        for i in range(40):  # slowloris: headers, a few bytes, then nothing
            s = socket.create_connection((host, int(port)), timeout=5)
            s.sendall(b"POST /webhook/github HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"X-GitHub-Event: push\r\nX-GitHub-Delivery: slow-%d\r\n"
                      b"Content-Length: 100000\r\n\r\n{\"ref\"" % i)
            slow.append(s)
        for _ in range(3):
            assert d.get("/healthz")[0] == 200
        repo.add_skill("alpha", description="pushed during the attack")
        head = repo.commit("v2")
        mark = len(d.events)
        assert _push(d, "real-one") == 202
        d.wait_event(lambda e: e.get("event") == "sync_finished" and e.get("commit") == head,
                     start=mark, timeout=10)
        assert d.status()["last_deployed_sha"] == head
    finally:
        for s in slow:
            s.close()
    assert d.proc.poll() is None
    assert d.stop() == 0
