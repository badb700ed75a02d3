"""Fetch cost per transport and mirror growth: what issue 16 measured, as a script.

For each transport (local path, file://, git:// through ``git daemon``, smart HTTP
through ``git http-backend``, all on 127.0.0.1) it fetches a generated repository
once, then commits a one-skill change and fetches it, then repeats the one-skill
change N times and reports the mirror's pack count and size against one full
``git pack-objects`` pack of the head. It also times ``Source.probe()`` against
``git ls-remote <url> <ref>`` over git:// and HTTP.

    .venv/bin/python bench/transports.py --skills 1000 --syncs 100
    .venv/bin/python bench/transports.py --probe-only --rounds 50

Not a test: it prints figures and fails on nothing.
"""

from __future__ import annotations

import argparse
import base64
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from gitserver import GitDaemonServer, GitRoot, HttpGitServer, RepoBuilder, git_env, run_git  # noqa: E402

from skillsyncd.config import load_config  # noqa: E402
from skillsyncd.source.remote import Source  # noqa: E402


def make_repo(root: Path, skills: int, file_bytes: int, seed: int = 16) -> RepoBuilder:
    """A repository of ``skills`` skills, each SKILL.md plus two incompressible-ish files."""
    rng = random.Random(seed)
    repo = RepoBuilder(root / "origin", name="skills")
    for i in range(skills):
        base = repo.path / "skills" / f"s{i:05d}"
        base.mkdir(parents=True)
        (base / "SKILL.md").write_text(f"---\nname: s{i:05d}\ndescription: skill {i}\n---\nBody {i}\n")
        for name in ("ref.md", "data.txt"):
            raw = rng.randbytes(file_bytes * 3 // 4)
            (base / name).write_text(base64.b64encode(raw).decode())
    run_git("add", "-A", cwd=repo.path)
    repo.commit("initial")
    return repo


def change_one(repo: RepoBuilder, n: int, skills: int) -> str:
    name = f"s{n % skills:05d}"
    repo.write(f"skills/{name}/SKILL.md",
               f"---\nname: {name}\ndescription: change {n}\n---\nBody changed {n}\n")
    return repo.commit(f"change {n}")


def mirror_stats(mirror: Path) -> dict[str, Any]:
    packs = sorted((mirror / "objects" / "pack").glob("*.pack"))
    loose = [p for p in (mirror / "objects").glob("[0-9a-f][0-9a-f]/*")]
    size = sum(p.stat().st_size for p in (mirror / "objects").rglob("*") if p.is_file())
    return {"packs": len(packs), "loose": len(loose), "bytes": size}


def full_pack_bytes(repo: RepoBuilder) -> int:
    """Size of one pack holding exactly the head commit's objects, as git writes it."""
    objs = run_git("rev-list", "--objects", "--no-object-names", "-n", "1", "HEAD", cwd=repo.path)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["git", "pack-objects", "-q", f"{tmp}/p"], input=objs.encode(),
                       cwd=repo.path, env=git_env(), check=True, capture_output=True)
        return sum(p.stat().st_size for p in Path(tmp).glob("p-*.pack"))


def transport_urls(repo: RepoBuilder, http: HttpGitServer, daemon: GitDaemonServer) -> dict[str, str]:
    return {"local": str(repo.path), "file": f"file://{repo.path}",
            "git": daemon.url_for(repo), "http": http.url_for(repo)}


def measure_fetches(repo: RepoBuilder, url: str, state: Path, syncs: int, skills: int,
                    start: int) -> dict[str, Any]:
    cfg = load_config(flags={"repo": url, "state_dir": str(state)}, env={})
    src = Source(cfg)
    t0 = time.monotonic()
    first = src.fetch(src.probe())
    first_s = time.monotonic() - t0
    first_stats = mirror_stats(cfg.mirror_dir)
    previous = first.commit
    head = change_one(repo, start, skills)
    before = mirror_stats(cfg.mirror_dir)
    t0 = time.monotonic()
    one = src.fetch(head, previous=previous)
    one_s = time.monotonic() - t0
    after = mirror_stats(cfg.mirror_dir)
    previous = one.commit
    times = []
    peak_packs, peak_bytes = after["packs"], after["bytes"]
    for n in range(1, syncs):
        head = change_one(repo, start + n, skills)
        t0 = time.monotonic()
        previous = src.fetch(head, previous=previous).commit
        times.append(time.monotonic() - t0)
        now = mirror_stats(cfg.mirror_dir)
        peak_packs, peak_bytes = max(peak_packs, now["packs"]), max(peak_bytes, now["bytes"])
    return {
        "first_s": round(first_s, 3), "first_bytes": first_stats["bytes"],
        "one_skill_s": round(one_s, 3), "one_skill_bytes": after["bytes"] - before["bytes"],
        "one_skill_objects": getattr(one, "objects", None),
        "median_fetch_s": round(statistics.median(times), 3) if times else None,
        "after_syncs": mirror_stats(cfg.mirror_dir),
        "peak_packs": peak_packs, "peak_bytes": peak_bytes,
    }


def time_probe(url: str, ref: str, rounds: int) -> dict[str, float]:
    cfg = load_config(flags={"repo": url, "state_dir": tempfile.mkdtemp()}, env={})
    src = Source(cfg)
    probe, lsr = [], []
    for _ in range(rounds):  # interleaved, so load on the box hits both alike
        t0 = time.perf_counter()
        src.probe()
        probe.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        subprocess.run(["git", "ls-remote", url, f"refs/heads/{ref}"], env=git_env(),
                       check=True, capture_output=True)
        lsr.append(time.perf_counter() - t0)
    p, g = statistics.median(probe), statistics.median(lsr)
    return {"probe_ms": round(p * 1000, 2), "ls_remote_ms": round(g * 1000, 2),
            "ratio": round(p / g, 2)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--skills", type=int, default=1000)
    ap.add_argument("--file-bytes", type=int, default=12_000)
    ap.add_argument("--syncs", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=50)
    ap.add_argument("--transports", default="local,file,git,http")
    ap.add_argument("--probe-only", action="store_true")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="skillsyncd-transports-"))
    root = GitRoot(work / "root")
    http, daemon = HttpGitServer(root), GitDaemonServer(root)
    try:
        repo = make_repo(work, args.skills if not args.probe_only else 10, args.file_bytes)
        root.register(repo)
        urls = transport_urls(repo, http, daemon)
        if not args.probe_only:
            print("full pack of head (git pack-objects):", full_pack_bytes(repo), "bytes")
            for i, name in enumerate(args.transports.split(",")):
                res = measure_fetches(repo, urls[name], work / f"state-{name}", args.syncs,
                                      args.skills, start=i * 10_000)
                print(name, res, flush=True)
            print("full pack of head now:", full_pack_bytes(repo), "bytes")
        for name in ("git", "http"):
            print("probe", name, time_probe(urls[name], "main", args.rounds), flush=True)
    finally:
        http.close()
        daemon.close()
        if not os.environ.get("KEEP"):
            subprocess.run(["rm", "-rf", str(work)], check=False)


if __name__ == "__main__":
    main()
