"""Skills held in memory: for tests and tools that have bytes but no git objects.

Entry shas are real git blob ids, so a Skill built here looks exactly like one
read from a commit; the blob reader records what was read, which is how the
tests prove oversize blobs and symlink targets are never touched.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field

from skillsyncd.model import MODE_FILE, Entry, Skill


def blob_sha(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class BlobStore:
    """A read_blob callable over a dict, remembering every sha it was asked for."""

    blobs: dict[str, bytes] = field(default_factory=dict)
    reads: list[str] = field(default_factory=list)

    def __call__(self, sha: str) -> bytes:
        self.reads.append(sha)
        return self.blobs[sha]


def skill_from_files(
    name: str,
    files: Mapping[str, bytes | str | tuple[int, bytes | str]],
    *,
    sizes: bool = True,
) -> tuple[Skill, BlobStore]:
    """``{"SKILL.md": b"...", "run.sh": (0o100755, b"...")}`` -> (Skill, read_blob).

    ``sizes=False`` leaves Entry.size unknown, as when a pack cannot tell it cheaply.
    """
    store = BlobStore()
    entries = []
    for path, spec in files.items():
        mode, content = spec if isinstance(spec, tuple) else (MODE_FILE, spec)
        data = content.encode() if isinstance(content, str) else content
        sha = blob_sha(data)
        store.blobs[sha] = data
        entries.append(Entry(path, mode, sha, len(data) if sizes else None))
    tree = hashlib.sha1(repr(sorted((e.path, e.mode, e.sha) for e in entries)).encode()).hexdigest()
    return Skill(name=name, tree_sha=tree, entries=tuple(entries)), store
