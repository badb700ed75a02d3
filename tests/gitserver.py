"""Real git peers on 127.0.0.1 for tests: a repo builder, smart HTTP, git daemon, dead-end sockets.

Everything here drives the stock ``git`` binary so that the daemon under test talks to
the same servers it meets in production, not to a mock. Nothing binds beyond 127.0.0.1.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import gzip
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
import zlib
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NamedTuple

HOST = "127.0.0.1"

_ISOLATION_HOME = Path(tempfile.mkdtemp(prefix="skillsyncd-git-home-"))
atexit.register(shutil.rmtree, _ISOLATION_HOME, ignore_errors=True)


def git_env(home: Path | None = None, **extra: str) -> dict[str, str]:
    """Environment for a git subprocess that ignores the user's and the system's config."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(
        HOME=str(home or _ISOLATION_HOME),
        XDG_CONFIG_HOME=str(home or _ISOLATION_HOME),
        GIT_CONFIG_NOSYSTEM="1",
        GIT_TERMINAL_PROMPT="0",
        LC_ALL="C",
    )
    env.update(extra)
    return env


def run_git(*args: str, cwd: Path | None = None, input: bytes | None = None,
            env: dict[str, str] | None = None, timeout: float = 60) -> str:
    """Run git, raising with its stderr on failure so a broken fixture says why."""
    proc = subprocess.run(["git", *args], cwd=cwd, input=input, env=env or git_env(),
                          capture_output=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed ({proc.returncode}): "
                           f"{proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout.decode()


def upload_pack_config(allow: bool = True) -> dict[str, str]:
    """Server-side git config as environment: like GitHub, upload-pack honours partial
    clone filters (``blob:limit``) unless ``allow`` is False (an older or stricter server)."""
    return {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "uploadpack.allowFilter",
            "GIT_CONFIG_VALUE_0": "true" if allow else "false"}


# --------------------------------------------------------------------------- repositories


class RepoBuilder:
    """A non-bare git repository built with the git CLI, servable by every server here.

    Changes are staged as they are made; ``commit`` records them and returns the SHA.
    Commit times strictly increase, so two commits never share a timestamp.
    """

    def __init__(self, path: Path, name: str | None = None) -> None:
        self._path = Path(path)
        self.name = name or self._path.name
        self._path.mkdir(parents=True, exist_ok=True)
        self._clock = int(time.time()) - 1
        self._env = git_env(
            GIT_AUTHOR_NAME="Skill Author", GIT_AUTHOR_EMAIL="author@example.invalid",
            GIT_COMMITTER_NAME="Skill Committer", GIT_COMMITTER_EMAIL="committer@example.invalid",
        )
        self._git("-c", "init.defaultBranch=main", "init", "-q")
        # Like GitHub: a client may fetch any commit reachable from a ref by its SHA.
        self._git("config", "uploadpack.allowReachableSHA1InWant", "true")
        self._git("config", "core.autocrlf", "false")
        self._git("config", "commit.gpgsign", "false")
        (self._path / ".git" / "git-daemon-export-ok").touch()

    @property
    def path(self) -> Path:
        """The work tree; ``str(repo.path)`` is also a valid local repo URL."""
        return self._path

    @property
    def git_dir(self) -> Path:
        return self._path / ".git"

    def _git(self, *args: str, env: dict[str, str] | None = None) -> str:
        return run_git(*args, cwd=self._path, env=env or self._env)

    def _target(self, rel: str) -> Path:
        target = self._path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_symlink() or target.is_file():
            target.unlink()
        return target

    def write(self, path: str, content: str | bytes, mode: int | None = None) -> None:
        """Write a file and stage it; ``mode=0o755`` stages it as executable."""
        target = self._target(path)
        data = content.encode() if isinstance(content, str) else content
        target.write_bytes(data)
        if mode is not None:
            target.chmod(mode)
        self._git("add", "-f", "--", path)

    def symlink(self, path: str, target: str) -> None:
        """Stage a symlink; ``target`` is stored verbatim (may be absolute or escape the tree)."""
        link = self._target(path)
        os.symlink(target, link)
        self._git("add", "-f", "--", path)

    def remove(self, path: str) -> None:
        """Remove a file or a whole directory from the tree and the index."""
        self._git("rm", "-r", "-q", "--cached", "--ignore-unmatch", "--", path)
        target = self._path / path
        if target.is_symlink() or target.is_file():
            target.unlink()
        elif target.is_dir():
            shutil.rmtree(target)

    def add_gitlink(self, path: str, sha: str) -> None:
        """Stage a submodule entry (mode 160000) pointing at a commit that need not exist."""
        self._git("update-index", "--add", "--cacheinfo", f"160000,{sha},{path}")

    def add_skill(self, name: str, description: str = "A test skill.", version: str | None = None,
                  extra_files: dict[str, str | bytes] | None = None,
                  body: str = "Use this skill in tests.\n") -> None:
        """Write ``<name>/SKILL.md`` with YAML frontmatter, plus ``extra_files`` inside ``<name>/``.

        Files already in the skill folder and not named here are left alone.
        """
        lines = ["---", f"name: {name}", f"description: {description}"]
        if version is not None:
            lines.append(f"version: {version}")
        lines.append("---")
        self.write(f"{name}/SKILL.md", "\n".join(lines) + "\n\n" + body)
        for rel, content in (extra_files or {}).items():
            self.write(f"{name}/{rel}", content)

    def commit(self, msg: str) -> str:
        """Commit what is staged (an empty commit if nothing is) and return the new HEAD."""
        self._clock = max(self._clock + 1, int(time.time()))
        stamp = f"{self._clock} +0000"
        env = dict(self._env, GIT_AUTHOR_DATE=stamp, GIT_COMMITTER_DATE=stamp)
        self._git("commit", "-q", "--allow-empty", "--no-verify", "-m", msg, env=env)
        return self.head()

    def tag(self, name: str, sha: str | None = None, message: str | None = None) -> str:
        """Create a tag at ``sha`` (default HEAD); annotated if ``message`` is given."""
        args = ["tag", "-f"]
        if message is not None:
            args += ["-a", "-m", message]
        self._git(*args, name, sha or "HEAD")
        return self._git("rev-parse", f"refs/tags/{name}").strip()

    def branch(self, name: str, sha: str | None = None) -> None:
        """Create or move a branch without checking it out."""
        self._git("branch", "-f", name, sha or "HEAD")

    def force_reset(self, sha: str) -> None:
        """Move the current branch to ``sha`` (work tree and index too), like a force push."""
        self._git("reset", "-q", "--hard", sha)

    def head(self) -> str:
        return self._git("rev-parse", "HEAD").strip()

    def rev_parse(self, rev: str) -> str:
        return self._git("rev-parse", rev).strip()


class GitRoot:
    """One directory both servers export; a repo is served once a ``<name>`` symlink points at it.

    The symlink targets the live work tree, so a commit made after the server started is served
    at once, with no push or update-server-info step.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def register(self, repo: RepoBuilder | Path, name: str | None = None) -> str:
        """Export ``repo`` as ``name`` (default: its own name) and return that name."""
        path = repo.path if isinstance(repo, RepoBuilder) else Path(repo)
        if name is None:
            name = repo.name if isinstance(repo, RepoBuilder) else path.name
        if "/" in name or name in ("", ".", ".."):
            raise ValueError(f"bad repo name {name!r}")
        link = self.root / name
        if link.is_symlink():
            if Path(os.readlink(link)) == path:
                return name
            link.unlink()
        link.symlink_to(path)
        return name

    def unregister(self, name: str) -> None:
        link = self.root / name
        if link.is_symlink():
            link.unlink()

    def name_of(self, repo: RepoBuilder | str) -> str:
        return self.register(repo) if isinstance(repo, RepoBuilder) else repo


# --------------------------------------------------------------------------- sockets


def free_port() -> int:
    """A port that was free a moment ago (for servers that must pick their own)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 10.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Block until something accepts on ``port``; fail early if ``proc`` dies first."""
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listening on {HOST}:{port} after {timeout}s") from None
            time.sleep(0.02)


class ClosedPort:
    """A port bound but not listening: connecting is refused, and nobody else can take it."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind((HOST, 0))
        self.port: int = self._sock.getsockname()[1]

    def close(self) -> None:
        self._sock.close()


class _AcceptingServer:
    """Accepts connections on a thread and hands each to ``_handle``; closes all on ``close``."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((HOST, 0))
        self._sock.listen(64)
        self._sock.settimeout(0.1)
        self.port: int = self._sock.getsockname()[1]
        self.accepted = 0
        self._conns: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=type(self).__name__, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except (TimeoutError, OSError):
                continue
            self.accepted += 1
            self._handle(conn)

    def _handle(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sock.close()
        for conn in self._conns:
            with contextlib.suppress(OSError):
                conn.close()


class BlackHole(_AcceptingServer):
    """Accepts TCP connections and never sends a byte, so only a client timeout ends the wait."""

    def _handle(self, conn: socket.socket) -> None:
        self._conns.append(conn)


class ResetServer(_AcceptingServer):
    """Accepts, reads what the client sends first, then aborts the connection with a RST."""

    def _handle(self, conn: socket.socket) -> None:
        def abort() -> None:
            conn.settimeout(2)
            with contextlib.suppress(OSError):
                conn.recv(65536)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()

        threading.Thread(target=abort, daemon=True).start()


# --------------------------------------------------------------------------- smart HTTP


class _Exchange(NamedTuple):
    method: str
    path: str  # with the query string
    status: int
    nbytes: int  # response body bytes


class Request(_Exchange):
    """One logged HTTP exchange: a plain ``(method, path, status, nbytes)`` tuple that also
    carries the request ``headers`` for tests that check what the client sent."""

    headers: Message  # case-insensitive: ``r.headers["git-protocol"]``

    @classmethod
    def make(cls, method: str, path: str, status: int, nbytes: int, headers: Message) -> Request:
        req = cls(method, path, status, nbytes)
        req.headers = headers
        return req


class HttpGitServer:
    """``git http-backend`` behind a threaded HTTP/1.1 server, with switches for failure tests.

    Fetch filters are allowed, as on GitHub; set ``allow_filter = False`` to serve like a
    server that refuses them (``reset`` allows them again).

    ``requests`` logs every exchange (appended before the body is sent, so it is complete as
    soon as a client has its answer); clear it freely between phases of a test.
    """

    def __init__(self, root: GitRoot) -> None:
        self.git_root = root
        self.requests: list[Request] = []
        self._auth: tuple[str, str] | None = None
        self._forced: int | None = None
        self._slow: tuple[float, int] | None = None
        self.allow_filter = True
        handler = type("Handler", (_GitHandler,), {"git_server": self})
        self._httpd = ThreadingHTTPServer((HOST, 0), handler)
        self._httpd.daemon_threads = True
        self.port: int = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                         name="http-git-server", daemon=True)
        self._thread.start()

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def url_for(self, repo: RepoBuilder | str) -> str:
        """URL of a repo (registering a RepoBuilder if needed): ``http://127.0.0.1:PORT/<name>``."""
        return f"{self.base_url}/{self.git_root.name_of(repo)}"

    def require_auth(self, username: str | None, password: str | None) -> None:
        """Demand HTTP Basic credentials on every request; ``(None, None)`` turns auth off."""
        self._auth = None if username is None else (username, password or "")

    def force_status(self, status: int | None) -> None:
        """Answer every request with ``status`` and a short body; ``None`` serves git again."""
        self._forced = status

    def slow(self, delay: float | None, chunk: int = 64) -> None:
        """Trickle each response body ``chunk`` bytes at a time, sleeping ``delay`` between."""
        self._slow = None if delay is None else (delay, chunk)

    def reset(self) -> None:
        """Back to a plain open server with an empty log (between tests)."""
        self.allow_filter = True
        self._auth = None
        self._forced = None
        self._slow = None
        self.requests.clear()

    def bytes_sent(self) -> int:
        return sum(r.nbytes for r in self.requests)

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


class _GitHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 30  # an idle keep-alive connection frees its thread eventually
    git_server: HttpGitServer

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the request log is the record tests read."""

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                parts.append(self.rfile.read(size))
                self.rfile.readline()
            body = b"".join(parts)
        else:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        encoding = self.headers.get("Content-Encoding", "").lower()
        if encoding in ("gzip", "x-gzip"):
            body = gzip.decompress(body)
        elif encoding == "deflate":
            body = zlib.decompress(body)
        return body

    def _authorized(self) -> bool:
        expected = self.git_server._auth
        if expected is None:
            return True
        header = self.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(value.strip()).decode().partition(":")
        except ValueError:
            return False
        return (user, password) == expected

    def _serve(self) -> None:
        server = self.git_server
        headers = self.headers
        body = self._read_body()
        if server._forced is not None:
            self._reply(server._forced, [("Content-Type", "text/plain")],
                        f"forced status {server._forced}\n".encode(), headers)
        elif not self._authorized():
            challenge = [("Content-Type", "text/plain"), ("WWW-Authenticate", 'Basic realm="git"')]
            self._reply(401, challenge, b"authentication required\n", headers)
        else:
            status, out_headers, out = self._run_backend(body)
            self._reply(status, out_headers, out, headers)

    def _run_backend(self, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        path, _, query = self.path.partition("?")
        env = git_env(
            GIT_PROJECT_ROOT=str(self.git_server.git_root.root),
            GIT_HTTP_EXPORT_ALL="1",
            GATEWAY_INTERFACE="CGI/1.1",
            SERVER_PROTOCOL="HTTP/1.1",
            REQUEST_METHOD=self.command,
            PATH_INFO=path,
            QUERY_STRING=query,
            CONTENT_TYPE=self.headers.get("Content-Type", ""),
            CONTENT_LENGTH=str(len(body)),
            REMOTE_ADDR=self.client_address[0],
        )
        env.update(upload_pack_config(allow=self.git_server.allow_filter))
        if self.headers.get("Git-Protocol"):
            env["GIT_PROTOCOL"] = env["HTTP_GIT_PROTOCOL"] = self.headers["Git-Protocol"]
        if self.git_server._auth is not None:
            env["REMOTE_USER"] = self.git_server._auth[0]
        proc = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True,
                              timeout=120, check=False)
        raw = proc.stdout
        cuts = [i for i in (raw.find(b"\r\n\r\n"), raw.find(b"\n\n")) if i >= 0]
        if not cuts:
            detail = proc.stderr or b"http-backend produced no headers\n"
            return 500, [("Content-Type", "text/plain")], detail
        end = min(cuts)
        sep = b"\r\n\r\n" if raw.startswith(b"\r\n\r\n", end) else b"\n\n"
        head, out = raw[:end], raw[end + len(sep):]
        status = 200
        out_headers: list[tuple[str, str]] = []
        for line in head.decode("latin-1").splitlines():
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.strip().split()[0])
            elif name and name.lower() not in ("content-length", "connection", "transfer-encoding"):
                out_headers.append((name.strip(), value.strip()))
        return status, out_headers, out

    def _reply(self, status: int, headers: list[tuple[str, str]], body: bytes,
               req_headers: Message) -> None:
        self.git_server.requests.append(Request.make(self.command, self.path, status, len(body), req_headers))
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        slow = self.git_server._slow
        try:
            if slow is None:
                self.wfile.write(body)
            else:
                delay, chunk = slow
                self.wfile.flush()
                for i in range(0, len(body), chunk):
                    self.wfile.write(body[i:i + chunk])
                    self.wfile.flush()
                    time.sleep(delay)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


# --------------------------------------------------------------------------- git daemon


class GitDaemonServer:
    """``git daemon`` exporting a GitRoot on 127.0.0.1 (upload-pack only)."""

    def __init__(self, root: GitRoot, attempts: int = 5) -> None:
        self.git_root = root
        self._log_file = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the daemon
        last: Exception | None = None
        for _ in range(attempts):
            port = free_port()
            proc = subprocess.Popen(
                ["git", "daemon", "--reuseaddr", f"--base-path={root.root}", "--export-all",
                 f"--listen={HOST}", f"--port={port}", "--enable=upload-pack", "--informative-errors",
                 str(root.root)],
                env={**git_env(), **upload_pack_config()}, stdin=subprocess.DEVNULL,
                stdout=self._log_file, stderr=self._log_file,
                start_new_session=True,
            )
            try:
                wait_for_port(port, proc=proc)
            except (RuntimeError, TimeoutError) as exc:  # port taken in the meantime: try another
                last = exc
                self._stop(proc)
                continue
            self.proc, self.port = proc, port
            return
        raise RuntimeError(f"git daemon did not start: {last}")

    @property
    def base_url(self) -> str:
        return f"git://{HOST}:{self.port}"

    def url_for(self, repo: RepoBuilder | str) -> str:
        """URL of a repo (registering a RepoBuilder if needed): ``git://127.0.0.1:PORT/<name>``."""
        return f"{self.base_url}/{self.git_root.name_of(repo)}"

    def log(self) -> str:
        self._log_file.seek(0)
        return self._log_file.read().decode(errors="replace")

    @staticmethod
    def _stop(proc: subprocess.Popen[bytes]) -> None:
        """Stop the daemon and the upload-pack children in its own process group."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout=5)
                break
            except subprocess.TimeoutExpired:
                continue
        # Children outlive the daemon for a moment (and may be reaped late): make sure
        # the whole group is gone before close() returns.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                return
            time.sleep(0.05)

    def close(self) -> None:
        self._stop(self.proc)
        self._log_file.close()
