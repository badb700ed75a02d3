"""Shared fixtures: real git servers on 127.0.0.1 and repos to serve (see tests/gitserver.py)."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator

import pytest
from gitserver import (
    BlackHole,
    ClosedPort,
    GitDaemonServer,
    GitRoot,
    HttpGitServer,
    RepoBuilder,
    ResetServer,
)
from hypothesis import settings

# The suite is the same run every time: property tests draw the same examples on every
# machine, so CI cannot turn red on a draw no one has seen (HYPOTHESIS_PROFILE=explore
# draws new ones, and its failures become fixed examples). No example database either.
settings.register_profile("repeatable", derandomize=True, database=None)
settings.register_profile("explore", database=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))

_repo_numbers = itertools.count(1)


@pytest.fixture(scope="session")
def git_root(tmp_path_factory: pytest.TempPathFactory) -> GitRoot:
    """The one directory both servers export; repos appear in it as symlinks."""
    return GitRoot(tmp_path_factory.mktemp("git-root"))


@pytest.fixture(scope="session")
def _http_git_server_session(git_root: GitRoot) -> Iterator[HttpGitServer]:
    server = HttpGitServer(git_root)
    yield server
    server.close()


@pytest.fixture
def http_git_server(_http_git_server_session: HttpGitServer) -> Iterator[HttpGitServer]:
    """The session's smart HTTP server, with auth, forced status, slow mode and log reset per test."""
    server = _http_git_server_session
    server.reset()
    yield server
    server.reset()


@pytest.fixture(scope="session")
def git_daemon_server(git_root: GitRoot) -> Iterator[GitDaemonServer]:
    """A ``git daemon`` for git:// URLs, started once per session."""
    server = GitDaemonServer(git_root)
    yield server
    server.close()


@pytest.fixture
def repo(tmp_path_factory: pytest.TempPathFactory, git_root: GitRoot) -> Iterator[RepoBuilder]:
    """A fresh repo, already exported under ``repo.name`` by both servers (no server is started)."""
    n = next(_repo_numbers)
    builder = RepoBuilder(tmp_path_factory.mktemp(f"origin{n}-"), name=f"skills{n}")
    git_root.register(builder)
    yield builder
    git_root.unregister(builder.name)


@pytest.fixture
def black_hole() -> Iterator[int]:
    """Port of a server that accepts and then never answers."""
    hole = BlackHole()
    yield hole.port
    hole.close()


@pytest.fixture
def closed_port() -> Iterator[int]:
    """Port with nothing listening: connections are refused."""
    port = ClosedPort()
    yield port.port
    port.close()


@pytest.fixture
def reset_server() -> Iterator[int]:
    """Port of a server that reads the request, then resets the connection."""
    server = ResetServer()
    yield server.port
    server.close()
