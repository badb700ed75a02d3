"""Verification of a release against its manifest: every skill present, every hash right."""

from __future__ import annotations

import os
from collections.abc import Collection
from pathlib import Path

from dulwich.objects import Blob, ObjectID, Tree

from skillsyncd.errors import ReleaseError
from skillsyncd.model import MODE_EXEC, MODE_FILE
from skillsyncd.release.releases import Releases, store_target


def tree_sha_of(folder: Path) -> str:
    """The git tree id of a folder on disk, so a release can be checked against git."""
    tree = Tree()
    for child in sorted(folder.iterdir()):
        if child.is_symlink():
            raise ReleaseError(f"unexpected symlink in release: {child}")
        if child.is_dir():
            tree.add(child.name.encode("utf-8", "surrogateescape"), 0o040000,
                     ObjectID(tree_sha_of(child).encode()))
        else:
            blob = Blob.from_string(child.read_bytes())
            mode = MODE_EXEC if os.stat(child).st_mode & 0o111 else MODE_FILE
            tree.add(child.name.encode("utf-8", "surrogateescape"), mode, blob.id)
    return tree.id.decode()


def _skill_folders(root: Path, expected: set[str]) -> tuple[set[str], list[str]]:
    """Skill entries of a release (grouped ones as 'group/skill'), and entries that are none."""
    groups = {n.rsplit("/", i)[0] for n in expected for i in range(1, n.count("/") + 1)}
    present: set[str] = set()
    extras: list[str] = []
    stack = [("", str(root))] if root.is_dir() else []
    while stack:
        rel, folder = stack.pop()
        with os.scandir(folder) as entries:
            for e in sorted(entries, key=lambda e: e.name):
                name = f"{rel}{e.name}"
                if name in expected:
                    present.add(name)
                elif name in groups and e.is_dir(follow_symlinks=False):
                    stack.append((f"{name}/", e.path))
                else:
                    extras.append(name)
    return present, sorted(extras)


def skill_problem(releases: Releases, root: Path, name: str, sha: str, hash_it: bool) -> str | None:
    """Why one skill entry of a release does not serve ``sha``; None when it does.

    A link must point at ``store/<sha>`` and that version must exist; a real folder
    (a 0.1.0 release, or link mode) must exist. With ``hash_it`` the bytes are hashed too.
    """
    entry = os.path.join(root, name)
    if os.path.islink(entry):
        want = store_target(name, sha)
        got = os.readlink(entry)
        if got != want:
            return f"{name}: links to {got}, not to {want}"
        folder = releases.store.path(sha)
        if not os.path.isdir(folder):
            return f"{name}: skill version {sha[:12]} is missing from the store"
    else:
        folder = Path(entry)
    if hash_it:
        actual = tree_sha_of(Path(folder))
        if actual != sha:
            return f"{name}: content {actual[:12]} does not match manifest {sha[:12]}"
    return None


def verify_release(
    releases: Releases, release_id: str, only: Collection[str] | None = None
) -> list[str]:
    """Differences between a release's files and its manifest; empty when intact.

    With ``only``, just those skills are hashed; the others must merely be present
    and point at the right skill version (used after a flip, where unchanged skills
    are versions an earlier release already verified).
    """
    problems: list[str] = []
    try:
        manifest = releases.manifest(release_id)
    except ReleaseError as exc:
        return [str(exc)]
    root = releases.dir(release_id)
    expected = manifest.live_shas()
    present, extras = _skill_folders(root, set(expected))
    for extra in extras:
        problems.append(f"{extra}: in the release but not in its manifest")
    for name, sha in sorted(expected.items()):
        if name not in present:
            problems.append(f"{name}: in the manifest but missing from the release")
            continue
        problem = skill_problem(releases, root, name, sha, only is None or name in only)
        if problem is not None:
            problems.append(problem)
    return problems
