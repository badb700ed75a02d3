"""Read a commit's tree into Skill values, without reading any blob content.

Which folders are skills is decided by :func:`skillsyncd.source.discovery.discover`,
the gateway's own rules; this module supplies the git listing and the entries
of each skill. Blob sizes come from object headers in the store, so a huge
blob can be refused before it is read. A blob the store does not hold at all
was left out by the fetch filter for its size (source.py): it becomes an
OmittedBlob entry, which size.file refuses. Names a filesystem cannot hold
become UnsafeEntry values, refused by a path rule for their skill alone.
"""

from __future__ import annotations

import stat
import threading
import zlib
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog
from dulwich.object_store import BaseObjectStore, tree_lookup_path
from dulwich.objects import Blob, ObjectID, Tree

from skillsyncd.model import MODE_GITLINK, MODE_SYMLINK, MODE_TREE, Entry, Skill
from skillsyncd.source import discovery
from skillsyncd.source import ignore as ignore_rules
from skillsyncd.source.discovery import Child, Kind, Skipped
from skillsyncd.validation.paths import MAX_NESTING, OmittedBlob, UnsafeEntry
from skillsyncd.validation.secrets.allowlist import ALLOWLIST_FILE, parse_allowlist

SKILL_FILE = "SKILL.md"
ALLOWLIST_MAX_BYTES = 64 * 1024

log = structlog.get_logger(__name__)


class SnapshotError(Exception):
    """The commit does not hold the configured skills path, or the store lacks an object."""


def _missing(sha: bytes | str) -> SnapshotError:
    text = sha.decode() if isinstance(sha, bytes) else sha
    return SnapshotError(
        f"git object {text} is missing from the fetched commit: the source repository is damaged "
        "or was pushed incompletely; run `git fsck` there and push again")


def _subtree(store: BaseObjectStore, tree_sha: bytes, path: str) -> Tree | None:
    tree = _tree(store, tree_sha)
    for part in filter(None, path.split("/")):
        try:
            mode, sha = tree[part.encode()]
        except KeyError:
            return None
        if mode != MODE_TREE:
            return None
        if sha not in store:
            raise _missing(sha)
        sub = store[sha]
        if not isinstance(sub, Tree):
            return None
        tree = sub
    return tree


def _tree(store: BaseObjectStore, sha: bytes) -> Tree:
    try:
        obj = store[ObjectID(sha)]
    except KeyError:
        raise _missing(sha) from None
    if not isinstance(obj, Tree):
        raise SnapshotError(f"git object {sha.decode()} should be a folder (tree) but is not")
    return obj


class _FolderCache:
    """What the last snapshot learnt about each folder tree, keyed by tree id.

    A tree id fixes a folder's entries and every blob's size, so a daemon that
    syncs again reads only the folders that changed. Only the latest snapshot's
    folders are kept, which bounds the memory to one snapshot.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._folders: dict[bytes, tuple[Entry, ...]] = {}

    def get(self) -> dict[bytes, tuple[Entry, ...]]:
        with self._lock:
            return self._folders

    def replace(self, folders: dict[bytes, tuple[Entry, ...]]) -> None:
        with self._lock:
            self._folders = folders


_CACHE = _FolderCache()


@dataclass(frozen=True)
class Survey:
    """A commit's skills (by path below the skills root) and every entry not deployed, with why."""

    skills: Mapping[str, Skill]
    skipped: tuple[Skipped, ...] = ()


def _kind(mode: int) -> Kind:
    if mode == MODE_TREE:
        return Kind.FOLDER
    if mode == MODE_GITLINK:
        return Kind.GITLINK
    if mode == MODE_SYMLINK:
        return Kind.SYMLINK
    return Kind.FILE


def _lister(store: BaseObjectStore, known: Mapping[bytes, tuple[Entry, ...]]) -> discovery.ListFolder:
    """List folders by tree id; a folder the last snapshot found as a skill is not read again.

    Discovery asks a skill folder only whether it holds a SKILL.md, and never looks
    below one, so its top-level files (from the cached entries) answer that.
    """
    listed: dict[Hashable, Sequence[Child]] = {}

    def list_folder(key: Hashable) -> Sequence[Child]:
        if key not in listed:
            entries = known.get(key) if isinstance(key, bytes) else None
            if entries is not None and any(e.path == discovery.SKILL_FILE for e in entries):
                listed[key] = [Child(e.path.encode("utf-8", "surrogateescape"), Kind.FILE, e.sha.encode())
                               for e in entries if "/" not in e.path]
            else:
                tree = _tree(store, key)  # type: ignore[arg-type]
                listed[key] = [Child(item.path, _kind(item.mode), item.sha) for item in tree.iteritems()]
        return listed[key]

    return list_folder


def _blob_text(store: BaseObjectStore, sha: bytes) -> bytes:
    """A small configuration blob (an ignore file), capped; empty when absent or too big."""
    size = object_size(store, sha.decode())
    oid = ObjectID(sha)
    if oid not in store or (size is not None and size > ignore_rules.IGNORE_FILE_MAX_BYTES):
        return b""
    obj = store[oid]
    return obj.as_raw_string() if isinstance(obj, Blob) else b""


def _root_ignore_lines(store: BaseObjectStore, tree_sha: str) -> tuple[str, ...]:
    root = _tree(store, tree_sha.encode())
    try:
        mode, sha = root[ignore_rules.IGNORE_FILE.encode()]
    except KeyError:
        return ()
    return ignore_rules.parse(_blob_text(store, sha)) if mode & 0o170000 == 0o100000 else ()


def survey(
    store: BaseObjectStore, tree_sha: str, skills_path: str = "", max_depth: int = discovery.DEFAULT_DEPTH,
    ignore: Sequence[str] = (),
) -> Survey:
    """All skills of a commit's tree as the gateway would discover them, and what is left out.

    ``ignore``: patterns from the settings; the repository's own ``.skillsyncignore``
    files and the defaults are added here (skillsyncd.source.ignore).
    """
    root = _subtree(store, tree_sha.encode(), skills_path)
    if root is None:
        raise SnapshotError(f"skills_path {skills_path!r} is not a folder in this commit")
    rules = ignore_rules.IgnoreRules.build(ignore, _root_ignore_lines(store, tree_sha))
    base = skills_path.strip("/")

    def ignored(path: str, is_dir: bool) -> bool:
        return rules.matches(f"{base}/{path}" if base else path, is_dir)

    known = _CACHE.get()
    found, skipped = discovery.discover(root.id, _lister(store, known), max_depth=max_depth,
                                        skills_path_set=bool(base), ignored=ignored)
    seen: dict[bytes, tuple[Entry, ...]] = {}
    skills: dict[str, Skill] = {}
    nested: list[Skipped] = []
    left_out = [s.path for s in skipped if s.rule == "layout.ignored"]
    for f in found:
        sha: bytes = f.key  # type: ignore[assignment]
        entries = known[sha] if sha in known else tuple(_walk(store, _tree(store, sha)))
        if all(e.size is not None for e in entries if e.mode & 0o170000 == 0o100000):
            # Every size known: safe to reuse by tree id. Not so with an OmittedBlob (its
            # size is unknown), which a fetch with a larger limit would bring in.
            seen[sha] = entries
        own_file = next((e for e in entries if e.path == ignore_rules.IGNORE_FILE), None)
        own = ignore_rules.parse(_blob_text(store, own_file.sha.encode())) if own_file else ()
        kept = ignore_rules.filter_entries(entries, rules, f"{base}/{f.name}" if base else f.name, own)
        content = sha.decode()
        if kept.ignored:
            left_out.extend(f"{f.name}/{p}" for p in kept.ignored)
            content = ignore_rules.tree_id(kept.entries)
        skills[f.name] = Skill(name=f.name, tree_sha=content, entries=kept.entries)
        nested.extend(discovery.nested_skills(f.name, [e.path for e in kept.entries]))
    _CACHE.replace(seen)
    skipped = tuple(s for s in skipped if s.rule != "layout.ignored")
    if left_out:
        shown = ", ".join(sorted(left_out)[:8]) + (", ..." if len(left_out) > 8 else "")
        skipped += (Skipped(".", "layout.ignored",
                            f"{len(left_out)} file(s) or folder(s) matched ignore rules (the defaults, "
                            f"SKILLSYNC_IGNORE, .skillsyncignore) and are not deployed: {shown}"),)
    return Survey(skills, skipped + tuple(nested))


def find_skills(store: BaseObjectStore, tree_sha: str, skills_path: str = "",
                max_depth: int = discovery.DEFAULT_DEPTH, ignore: Sequence[str] = ()) -> dict[str, Skill]:
    """All skills of a commit's tree, keyed by their path below the skills root."""
    return dict(survey(store, tree_sha, skills_path, max_depth, ignore).skills)


def _walk(store: BaseObjectStore, tree: Tree) -> list[Entry]:
    """Every entry below a skill folder, iteratively (a tree may nest thousands deep)."""
    out: list[Entry] = []
    stack: list[tuple[Tree, str, int]] = [(tree, "", 0)]
    while stack:
        folder, prefix, depth = stack.pop()
        for item in folder.iteritems():
            problem = discovery.name_problem(item.path)
            shown = item.path.decode("utf-8", errors="surrogateescape")
            path = prefix + (shown.replace("/", "\\x2f") if problem and problem[0] == "path.slash" else shown)
            sha = item.sha.decode()
            if problem is not None and problem[0] in {"path.slash", "path.name-too-long"}:
                out.append(UnsafeEntry(path=path, mode=item.mode, sha=sha, rule=problem[0],
                                       why=f"not deployed: {problem[1]}"))
                continue
            if len(path.encode("utf-8", "surrogateescape")) > discovery.SKILL_PATH_MAX:
                out.append(UnsafeEntry(path=path[:200] + "...", mode=item.mode, sha=sha, rule="path.too-long",
                                       why="a path too long for the gateway's filesystem"))
                continue
            if item.mode == MODE_TREE:
                if depth + 1 > MAX_NESTING:
                    out.append(UnsafeEntry(path=path, mode=item.mode, sha=sha, rule="path.too-deep",
                                           why=f"folders nested more than {MAX_NESTING} levels deep"))
                    continue
                stack.append((_tree(store, item.sha), path + "/", depth + 1))
                continue
            size = object_size(store, sha) if item.mode & 0o170000 == 0o100000 else None
            if size is None and item.mode & 0o170000 == 0o100000 and item.sha not in store:
                out.append(OmittedBlob(path=path, mode=item.mode, sha=sha))
                continue
            out.append(Entry(path=path, mode=item.mode, sha=sha, size=size))
    out.sort(key=lambda e: e.path)
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


def read_allowlist(store: BaseObjectStore, tree_sha: str, skills_path: str) -> frozenset[str]:
    """Secret fingerprints allowed by ``.skillsync-allow`` at the repository or skills root."""
    allowed: set[str] = set()
    for folder in {"", skills_path}:
        path = f"{folder}/{ALLOWLIST_FILE}" if folder else ALLOWLIST_FILE
        try:
            mode, sha = tree_lookup_path(store.__getitem__, ObjectID(tree_sha.encode()), path.encode())
        except KeyError:
            continue
        size = object_size(store, sha.decode())
        if not stat.S_ISREG(mode) or size is None or size > ALLOWLIST_MAX_BYTES:
            log.warning("allowlist_ignored", path=path, reason="not a regular file under 64 KB")
            continue
        allowed |= parse_allowlist(store[sha].as_raw_string())
    return frozenset(allowed)
