"""The real OpenClaw package, installed once per session for the e2e tests."""

from __future__ import annotations

import pytest
from openclaw_peer import Install, InstallError, install


@pytest.fixture(scope="session")
def openclaw() -> Install:
    try:
        return install()
    except InstallError as exc:
        pytest.fail(f"cannot install the OpenClaw peer: {exc}")
