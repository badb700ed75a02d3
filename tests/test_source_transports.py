"""Every transport fetches incrementally, and the mirror stays bounded, even across kills.

Real servers on 127.0.0.1 (tests/gitserver.py): a local path, a ``file://`` URL,
``git daemon`` (git://) and ``git http-backend`` (smart HTTP).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from dulwich.errors import ObjectMissing
from dulwich.objects import Commit, ObjectID, Tree
from dulwich.repo import Repo
from gitserver import GitDaemonServer, HttpGitServer, RepoBuilder, git_env, run_git

from skillsyncd.config import load_config
from skillsyncd.source import mirror
from skillsyncd.source.remote import FETCHED_REF, Source
from skillsyncd.sync.assembly import build_syncer

TRANSPORTS = ["local", "file", "git", "http"]
SKILLS = 30
SYNCS = 30
HERE = Path(__file__).resolve().parent


def _url(transport: str, repo: RepoBuilder, http: HttpGitServer, daemon: GitDaemonServer) -> str:
    if transport == "http":
        return http.url_for(repo)
    if transport == "git":
        return daemon.url_for(repo)
    return f"file://{repo.path}" if transport == "file" else str(repo.path)


def _noise(seed: str, lines: int = 40) -> str:
    """Text that compresses little, so pack sizes reflect what was sent."""
    return "".join(hashlib.sha256(f"{seed}-{n}".encode()).hexdigest() + "\n" for n in range(lines))


def _populate(repo: RepoBuilder) -> str:
    for i in range(SKILLS):
        repo.add_skill(f"s{i:02d}", description=f"skill {i}",
                       extra_files={"ref.md": _noise(f"ref{i}"), "run.sh": f"echo {i}\n"})
    return repo.commit("initial")


def _change_one(repo: RepoBuilder, n: int) -> str:
    repo.add_skill(f"s{n % SKILLS:02d}", description=f"change {n}")
    return repo.commit(f"change {n}")


def _full_pack_bytes(repo: RepoBuilder) -> int:
    """Pack plus index of exactly the head's objects, as git writes them."""
    objs = run_git("rev-list", "--objects", "--no-object-names", "-n", "1", "HEAD", cwd=repo.path)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["git", "pack-objects", "-q", f"{tmp}/p"], input=objs.encode(),
                       cwd=repo.path, env=git_env(), check=True, capture_output=True)
        return sum(p.stat().st_size for p in Path(tmp).iterdir())


def _head_objects(repo: RepoBuilder) -> set[str]:
    out = run_git("rev-list", "--objects", "--no-object-names", "-n", "1", "HEAD", cwd=repo.path)
    return set(out.split())


def _assert_mirror_holds_head(mirror_dir: Path, head: str) -> None:
    """The fetched ref names ``head`` and every object of its tree is readable."""
    repo = Repo(str(mirror_dir))
    try:
        assert repo.refs[FETCHED_REF] == head.encode()
        commit = repo[ObjectID(head.encode())]
        assert isinstance(commit, Commit)
        todo = [commit.tree]
        blobs = 0
        while todo:
            tree = repo[todo.pop()]
            assert isinstance(tree, Tree)
            for entry in tree.iteritems():
                assert entry.sha is not None and entry.mode is not None
                if entry.mode & 0o040000:
                    todo.append(entry.sha)
                else:
                    # Readable means the stored bytes hash back to the name the tree gives them.
                    raw = repo[entry.sha].as_raw_string()
                    header = b"blob %d\0" % len(raw)
                    assert hashlib.sha1(header + raw).hexdigest().encode() == entry.sha, entry.path
                    blobs += 1
        assert blobs > 0, "the fetched head has no files"
    finally:
        repo.close()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_one_skill_commit_fetches_a_handful_of_objects(
    transport: str, repo: RepoBuilder, http_git_server: HttpGitServer,
    git_daemon_server: GitDaemonServer, tmp_path: Path
) -> None:
    first_head = _populate(repo)
    cfg = load_config(flags={"repo": _url(transport, repo, http_git_server, git_daemon_server),
                             "state_dir": str(tmp_path / "s")}, env={})
    source = Source(cfg)
    first = source.fetch(source.probe())
    assert first.commit == first_head and first.objects >= len(_head_objects(repo))
    head = _change_one(repo, 1)
    one = source.fetch(source.probe(), previous=first.commit)
    assert one.commit == head and one.fetched and one.history_rewritten is False
    # commit, root tree, skill tree, SKILL.md blob; a thin pack may add the delta bases
    assert 4 <= one.objects <= 8, one
    assert one.bytes * 10 < first.bytes, (one, first)
    _assert_mirror_holds_head(cfg.mirror_dir, head)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_the_mirror_stays_bounded_across_many_syncs(
    transport: str, repo: RepoBuilder, http_git_server: HttpGitServer,
    git_daemon_server: GitDaemonServer, tmp_path: Path
) -> None:
    _populate(repo)
    cfg = load_config(flags={"repo": _url(transport, repo, http_git_server, git_daemon_server),
                             "state_dir": str(tmp_path / "s")}, env={})
    syncer = build_syncer(cfg)
    assert syncer.sync().status == "deployed"
    peak = mirror.usage(cfg.mirror_dir / "objects")
    for n in range(SYNCS):
        head = _change_one(repo, n)
        out = syncer.sync()
        assert out.status == "deployed" and out.commit == head, out
        now = mirror.usage(cfg.mirror_dir / "objects")
        peak = mirror.Usage(max(peak.packs, now.packs), max(peak.loose, now.loose),
                            max(peak.bytes, now.bytes))
    full = _full_pack_bytes(repo)
    assert peak.packs <= cfg.max_packs, peak
    assert peak.bytes <= 1.5 * full, (peak, full)
    _assert_mirror_holds_head(cfg.mirror_dir, head)


def test_history_rewrite_is_told_from_a_local_source(repo: RepoBuilder, tmp_path: Path) -> None:
    base = _populate(repo)
    cfg = load_config(flags={"repo": str(repo.path), "state_dir": str(tmp_path / "s")}, env={})
    source = Source(cfg)
    source.fetch(base)
    ahead = _change_one(repo, 1)
    repo.force_reset(base)
    rewritten = _change_one(repo, 2)
    assert source.fetch(ahead, previous=base).history_rewritten is False
    assert source.fetch(rewritten, previous=ahead).history_rewritten is True


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_no_change_sync_adds_nothing_to_the_mirror(
    transport: str, repo: RepoBuilder, http_git_server: HttpGitServer,
    git_daemon_server: GitDaemonServer, tmp_path: Path
) -> None:
    _populate(repo)
    cfg = load_config(flags={"repo": _url(transport, repo, http_git_server, git_daemon_server),
                             "state_dir": str(tmp_path / "s")}, env={})
    syncer = build_syncer(cfg)
    assert syncer.sync().status == "deployed"
    before = sorted(os.listdir(cfg.mirror_dir / "objects" / "pack"))
    assert syncer.sync().status == "no_change"
    assert sorted(os.listdir(cfg.mirror_dir / "objects" / "pack")) == before


def _crash_run(point: str, url: str, state: Path) -> int:
    env = {**os.environ, "SKILLSYNC_MAX_PACKS": "2", "PYTHONPATH": str(HERE)}
    env.pop("SKILLSYNC_REPO", None)
    proc = subprocess.run([sys.executable, str(HERE / "source_crashpoint.py"), point, "--once",
                           "--repo", url, "--state-dir", str(state)],
                          env=env, capture_output=True, timeout=120, check=False)
    return proc.returncode


CRASHES = [(kind, point) for kind in ("prune", "merge")
           for point in ("mid-pack", "before-index", "before-remove", "mid-remove", "before-loose")]
CRASHES.append(("prune", "before-baseline"))


@pytest.mark.parametrize(("kind", "point"), CRASHES)
def test_a_kill_mid_prune_leaves_a_mirror_the_next_sync_uses(
    kind: str, point: str, repo: RepoBuilder, http_git_server: HttpGitServer, tmp_path: Path
) -> None:
    """``prune``: the commit grows the mirror past 1.25x, so it is rewritten whole;
    ``merge``: a second one-skill commit with max_packs=2 merges the two small packs."""
    _populate(repo)
    url = http_git_server.url_for(repo)
    state = tmp_path / "s"
    cfg = load_config(flags={"repo": url, "state_dir": str(state)}, env={})
    assert build_syncer(cfg).sync().status == "deployed"
    if kind == "prune":
        repo.add_skill("big", description="grows the mirror",
                       extra_files={"data.md": _noise("big", 2000)})
        killed_head = repo.commit("big")
    else:
        _change_one(repo, 0)
        assert build_syncer(cfg).sync().status == "deployed"
        killed_head = _change_one(repo, 1)
    assert _crash_run(point, url, state) == -9  # SIGKILLed inside the prune
    out = build_syncer(cfg).sync()
    assert out.status == "deployed" and out.commit == killed_head, out
    _assert_mirror_holds_head(cfg.mirror_dir, killed_head)
    # the mirror was not thrown away: the next commit is still an incremental fetch
    head = _change_one(repo, 5)
    again = Source(cfg).fetch(head, previous=killed_head)
    assert again.fetched and 4 <= again.objects <= 8, again
    assert not [p for p in (cfg.mirror_dir / "objects" / "pack").iterdir()
                if p.suffix == ".pack" and not p.with_suffix(".idx").exists()]


def test_prune_keeps_exactly_the_head_and_previous_commit(
    repo: RepoBuilder, http_git_server: HttpGitServer, tmp_path: Path
) -> None:
    _populate(repo)
    url = http_git_server.url_for(repo)
    cfg = load_config(flags={"repo": url, "state_dir": str(tmp_path / "s")}, env={})
    source = Source(cfg)
    previous = source.fetch(source.probe()).commit
    for n in range(3):
        _change_one(repo, n)
        previous = source.fetch(source.probe(), previous=previous).commit
    old = previous
    head = _change_one(repo, 9)
    source.fetch(head, previous=old)
    store = Repo(str(cfg.mirror_dir))
    try:
        mirror.prune(store, ObjectID(head.encode()), ObjectID(old.encode()))
    finally:
        store.close()
    usage = mirror.usage(cfg.mirror_dir / "objects")
    assert usage.packs == 1 and usage.loose == 0
    store = Repo(str(cfg.mirror_dir))
    try:
        held = {p.decode() for p in store.object_store}
        shallow = {s.decode() for s in store.get_shallow()}
    finally:
        store.close()
    want = _head_objects(repo) | set(run_git("rev-list", "--objects", "--no-object-names", "-n",
                                             "1", old, cwd=repo.path).split())
    assert held == want
    assert shallow == {old}  # head's parent is kept; old's is not
    assert mirror.pruned_bytes(cfg.mirror_dir) == usage.bytes


def test_a_head_whose_tree_is_not_whole_resets_the_mirror_instead_of_pruning_it(
    repo: RepoBuilder, tmp_path: Path
) -> None:
    _populate(repo)
    cfg = load_config(flags={"repo": str(repo.path), "state_dir": str(tmp_path / "s")}, env={})
    source = Source(cfg)
    first = source.fetch(source.probe()).commit
    head = _change_one(repo, 1)
    source.fetch(head, previous=first)
    lost = repo.rev_parse("HEAD:s01")  # a subtree of the head, dropped from the mirror
    store = Repo(str(cfg.mirror_dir))
    try:
        keep = {o for o in store.object_store if o != lost.encode()}
        pack = store.object_store.add_objects([(store.object_store[o], None) for o in keep])
        assert pack is not None
        for name, path in mirror.complete_packs(cfg.mirror_dir / "objects").items():
            if name != os.path.basename(pack._basename):
                path.with_suffix(".idx").unlink()
                path.unlink()
    finally:
        store.close()
    store = Repo(str(cfg.mirror_dir))
    try:
        with pytest.raises(ObjectMissing):
            mirror.prune(store, ObjectID(head.encode()), ObjectID(first.encode()))
    finally:
        store.close()
    assert mirror.complete_packs(cfg.mirror_dir / "objects")  # nothing was removed


@pytest.mark.parametrize(("packs", "loose", "size", "baseline", "due"), [
    (1, 0, 100, None, False),  # a first fetch: its pack is the baseline
    (2, 0, 100, None, True),  # a mirror from before pruning existed
    (1, 3, 100, None, True),
    (3, 0, 120, 100, False),
    (21, 0, 120, 100, False),  # many packs alone are merged, not pruned
    (3, 0, 126, 100, True),  # grew by more than a quarter
])
def test_when_the_mirror_is_pruned(packs: int, loose: int, size: int, baseline: int | None,
                                   due: bool) -> None:
    assert mirror.needs_prune(mirror.Usage(packs, loose, size), baseline) is due
    assert mirror.needs_merge(mirror.Usage(packs, loose, size), 20) is (packs > 20)


def test_too_many_packs_are_merged_without_rewriting_the_head_pack(
    repo: RepoBuilder, http_git_server: HttpGitServer, tmp_path: Path
) -> None:
    _populate(repo)
    cfg = load_config(flags={"repo": http_git_server.url_for(repo),
                             "state_dir": str(tmp_path / "s")}, env={"SKILLSYNC_MAX_PACKS": "3"})
    syncer = build_syncer(cfg)
    assert syncer.sync().status == "deployed"
    objects = cfg.mirror_dir / "objects"
    (base,) = mirror.complete_packs(objects)
    baseline = mirror.pruned_bytes(cfg.mirror_dir)
    assert baseline is not None
    for n in range(6):  # few enough to stay under the 1.25x growth that prunes
        head = _change_one(repo, n)
        assert syncer.sync().commit == head
        assert mirror.usage(objects).packs <= 3
    assert mirror.usage(objects).bytes <= baseline * mirror.GROWTH
    assert base in mirror.complete_packs(objects)  # the big pack was never rewritten
    assert mirror.pruned_bytes(cfg.mirror_dir) == baseline  # and no prune happened
    _assert_mirror_holds_head(cfg.mirror_dir, head)


# --- memory: a local source's big blob elsewhere in history is never read -----------------------

BIG_BLOB = 64 * 1024 * 1024
_PEAK_CHILD = """
import sys
from skillsyncd.config import load_config
from skillsyncd.source.remote import Source

def peak_kib():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])

cfg = load_config(flags={"repo": sys.argv[1], "state_dir": sys.argv[2]}, env={})
source = Source(cfg)
before = peak_kib()
fetched = source.fetch(sys.argv[3])
print(fetched.commit, fetched.objects, before, peak_kib())
"""


def _peak_growth_of_a_fetch(url: str, state: Path, commit: str) -> tuple[int, int]:
    """Objects fetched and the peak RSS growth (bytes) of a fresh process fetching ``commit``.

    VmHWM, the high-water mark of this process's own memory: ``ru_maxrss`` would carry
    over pytest's own peak across the exec.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SKILLSYNC_", "GITHUB_"))}
    done = subprocess.run([sys.executable, "-c", _PEAK_CHILD, url, str(state), commit], env=env,
                          capture_output=True, text=True, timeout=300, check=True)
    got, objects, before, after = done.stdout.split()
    assert got == commit, done.stdout
    return int(objects), (int(after) - int(before)) * 1024


def test_a_local_fetch_does_not_read_a_big_blob_the_commit_lacks(
    repo: RepoBuilder, tmp_path: Path
) -> None:
    """The source's one pack holds a 64 MiB blob from an older commit: fetching the head,
    which lacks it, must not inflate it (the peak grew 74 MiB: dulwich's search for deltas
    to reuse inflated every object of the source's packs). A ``file://`` URL takes the
    same path (``transport.local_path``)."""
    line = hashlib.sha256(b"big").hexdigest().encode() + b"\n"
    repo.add_skill("big", extra_files={"data.bin": line * (BIG_BLOB // len(line))})
    repo.commit("a big file")
    repo.remove("big")
    repo.add_skill("small", extra_files={"ref.md": _noise("small")})
    repo.commit("the big file is gone")
    # one pack holding every object, the blob too (stored whole: no delta search on it)
    run_git("-c", "core.bigFileThreshold=1m", "repack", "-adq", cwd=repo.path)
    packs = list((repo.git_dir / "objects" / "pack").glob("*.pack"))
    assert len(packs) == 1
    objects, growth = _peak_growth_of_a_fetch(str(repo.path), tmp_path / "s", repo.head())
    assert objects == len(_head_objects(repo))
    print(f"peak RSS grew {growth / 2**20:.1f} MiB fetching past a "
          f"{BIG_BLOB / 2**20:.0f} MiB blob")
    assert growth < BIG_BLOB // 2, f"peak grew {growth / 2**20:.0f} MiB"
