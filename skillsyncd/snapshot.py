"""Read a commit's tree into Skill values, without reading any blob content.

A skill is ``<skills_path>/<name>/`` holding a ``SKILL.md`` blob. Folders
without one, gitlinks and hidden folders are not skills. Blob sizes come from
object headers in the store, so a huge blob can be refused before it is read.
A blob the store does not hold at all was left out by the fetch filter for its
size (source.py): it becomes an OmittedBlob entry, which size.file refuses.
"""

from __future__ import annotations

import threading
import zlib
from collections.abc import Iterable
from pathlib import Path

from dulwich.object_store import BaseObjectStore
from dulwich.objects import ObjectID, Tree

from skillsyncd.model import MODE_TREE, Entry, Skill
from skillsyncd.validation.paths import OmittedBlob

SKILL_FILE = "SKILL.md"


class SnapshotError(Exception):
    """The commit does not hold the configured skills path."""


def _subtree(store: BaseObjectStore, tree_sha: bytes, path: str) -> Tree | None:
    tree = store[ObjectID(tree_sha)]
    assert isinstance(tree, Tree)
    for part in filter(None, path.split("/")):
        try:
            mode, sha = tree[part.encode()]
        except KeyError:
            return None
        if mode != MODE_TREE:
            return None
        sub = store[sha]
        if not isinstance(sub, Tree):
            return None
        tree = sub
    return tree


class _FolderCache:
    """What the last snapshot learnt about each folder tree, keyed by tree id.

    A tree id fixes a folder's entries and every blob's size, so a daemon that
    syncs again reads only the folders that changed. Only the latest snapshot's
    folders are kept, which bounds the memory to one snapshot.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._folders: dict[bytes, tuple[Entry, ...] | None] = {}

    def get(self) -> dict[bytes, tuple[Entry, ...] | None]:
        with self._lock:
            return self._folders

    def replace(self, folders: dict[bytes, tuple[Entry, ...] | None]) -> None:
        with self._lock:
            self._folders = folders


_CACHE = _FolderCache()


def find_skills(store: BaseObjectStore, tree_sha: str, skills_path: str = "") -> dict[str, Skill]:
    """All skills of a commit's tree, keyed by folder name."""
    root = _subtree(store, tree_sha.encode(), skills_path)
    if root is None:
        raise SnapshotError(f"skills_path {skills_path!r} is not a folder in this commit")
    known = _CACHE.get()
    seen: dict[bytes, tuple[Entry, ...] | None] = {}
    skills: dict[str, Skill] = {}
    for item in root.iteritems():
        if item.mode != MODE_TREE:
            continue  # files, symlinks and gitlinks at the skills level are not skills
        raw_name = item.path
        try:
            name = raw_name.decode("utf-8")
        except UnicodeDecodeError:
            continue
        if name.startswith("."):
            continue
        entries = known[item.sha] if item.sha in known else _skill_entries(store, item.sha)
        if entries is None:
            seen[item.sha] = None
            continue
        if all(e.size is not None for e in entries if e.mode & 0o170000 == 0o100000):
            # Every size known: safe to reuse by tree id. Not so with an OmittedBlob (its
            # size is unknown), which a fetch with a larger limit would bring in.
            seen[item.sha] = entries
        skills[name] = Skill(name=name, tree_sha=item.sha.decode(), entries=entries)
    _CACHE.replace(seen)
    return skills


def _skill_entries(store: BaseObjectStore, sha: bytes) -> tuple[Entry, ...] | None:
    """The entries of a folder holding a SKILL.md; None for any other folder."""
    sub = store[ObjectID(sha)]
    if not isinstance(sub, Tree):
        return None
    names = {e.path for e in sub.iteritems()}
    if SKILL_FILE.encode() not in names:
        return None
    return tuple(_walk(store, sub, ""))


def _walk(store: BaseObjectStore, tree: Tree, prefix: str) -> list[Entry]:
    out: list[Entry] = []
    for item in tree.iteritems():
        path = prefix + item.path.decode("utf-8", errors="surrogateescape")
        if item.mode == MODE_TREE:
            sub = store[item.sha]
            if isinstance(sub, Tree):
                out.extend(_walk(store, sub, path + "/"))
            continue
        sha = item.sha.decode()
        size = object_size(store, sha) if item.mode & 0o170000 == 0o100000 else None
        if size is None and item.mode & 0o170000 == 0o100000 and item.sha not in store:
            out.append(OmittedBlob(path=path, mode=item.mode, sha=sha))
            continue
        out.append(Entry(path=path, mode=item.mode, sha=sha, size=size))
    return out


def object_size(store: BaseObjectStore, sha: str) -> int | None:
    """Uncompressed size of a blob from its header only; None if it cannot be told cheaply."""
    raw = sha.encode()
    for pack in getattr(store, "packs", ()):
        try:
            offset = pack.index.object_offset(raw)
        except KeyError:
            continue
        try:
            return _packed_size(pack.data._buffer(), offset)
        except Exception:  # private format details: fall back to "unknown"
            return None
    path = getattr(store, "path", None)
    if path:
        loose = Path(path) / sha[:2] / sha[2:]
        if loose.exists():
            return _loose_size(loose)
    return None


def _varint(buf: bytes | memoryview, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def _packed_size(buf: bytes | memoryview, offset: int) -> int:
    byte = buf[offset]
    type_num = (byte >> 4) & 7
    size = byte & 0x0F
    shift, pos = 4, offset + 1
    while byte & 0x80:
        byte = buf[pos]
        pos += 1
        size |= (byte & 0x7F) << shift
        shift += 7
    if type_num in (1, 2, 3, 4):  # a whole object: the header holds its size
        return size
    if type_num == 6:  # OFS_DELTA: skip the base offset
        while buf[pos] & 0x80:
            pos += 1
        pos += 1
    elif type_num == 7:  # REF_DELTA: skip the base id
        pos += 20
    # The delta's own header (source size, target size) is its first bytes.
    chunks = (bytes(buf[i : i + 1024]) for i in range(pos, min(len(buf), pos + 65536), 1024))
    head = _inflate_prefix(chunks, want=20)
    _, p = _varint(head, 0)
    target, _ = _varint(head, p)
    return target


def _inflate_prefix(chunks: Iterable[bytes], want: int) -> bytes:
    """The first ``want`` bytes of a zlib stream, inflating only as much as needed."""
    inflater = zlib.decompressobj()
    out = b""
    for chunk in chunks:
        out += inflater.decompress(chunk, want - len(out))
        if len(out) >= want or inflater.eof:
            break
    return out


def _loose_size(path: Path) -> int | None:
    with path.open("rb") as fh:
        head = _inflate_prefix(iter(lambda: fh.read(1024), b""), want=64)
    header, sep, _ = head.partition(b"\0")
    if not sep:
        return None
    _, _, size = header.partition(b" ")
    return int(size)
