"""The install on the user's own gateway Dockerfiles, when the corpus of them is present.

The corpus (the user's Dockerfile in the three versions known to have run) is not part of
the repository: GATEWAY_IMAGES_CORPUS names its folder, with a default beside the checkout
(docs/architecture.md, "Tests"); without it these tests skip and say so. For each file: the
one command installs with no hand edit and carries the right start command, a second run
changes nothing, hadolint finds nothing new, and the block's user creation succeeds in a
scratch root holding that image's users.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from container_root import make_root, run_in_root, user_creation_step, users_of
from test_dockerfile_patch import BLOCK, hadolint, install

ROOT = Path(__file__).resolve().parents[2]
CORPUS = Path(os.environ.get("GATEWAY_IMAGES_CORPUS")
              or ROOT.parent / "shared" / "corpora" / "gateway-images")

# folder -> (the command its final stage starts, the users its image holds when the block runs)
IMAGES = {
    "standalone-08d9fe5": ("node src/server.js", [("node", 1000), ("linuxbrew", 1001)]),
    "monorepo-bc9a8556": ("/app/entrypoint.sh", [("node", 1000), ("moltbot", 1001)]),
    "monorepo-a4e597be": ("sh /app/entrypoint.sh", [("node", 1000), ("moltbot", 1001)]),
}

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not CORPUS.is_dir(),
                       reason=f"the gateway-images corpus is not at {CORPUS} (set GATEWAY_IMAGES_CORPUS)"),
]


def _context(tmp_path: Path, image: str, name: str = "ctx") -> Path:
    ctx = tmp_path / name
    ctx.mkdir()
    shutil.copyfile(CORPUS / image / "Dockerfile", ctx / "Dockerfile")
    (ctx / "skillsyncd").symlink_to(ROOT)
    return ctx


def test_the_corpus_holds_the_known_images() -> None:
    assert sorted(p.name for p in CORPUS.iterdir() if (p / "Dockerfile").is_file()) == sorted(IMAGES)


@pytest.mark.parametrize("image", list(IMAGES))
def test_installs_into_the_users_dockerfile_with_no_hand_edit(image: str, tmp_path: Path) -> None:
    command, _users = IMAGES[image]
    ctx = _context(tmp_path, image)
    original = (ctx / "Dockerfile").read_text()
    done = install(ctx)
    assert done.returncode == 0, done.stderr
    assert f"gateway program `{command}`" in done.stdout and done.stdout.count("\n") == 1
    print(f"{image}: {done.stdout.strip()}")
    patched = (ctx / "Dockerfile").read_text()
    assert patched.startswith(original.rstrip("\n"))
    again = install(ctx)
    assert again.returncode == 0 and "nothing changed" in again.stdout
    assert (ctx / "Dockerfile").read_text() == patched
    before = hadolint(_context(tmp_path, image, name="before") / "Dockerfile")
    after = hadolint(ctx / "Dockerfile")
    new = sorted(set(after) - set(before))
    assert new == [], f"hadolint findings the block added: {new}"


@pytest.mark.skipif(os.geteuid() != 0, reason="chroot needs root")
@pytest.mark.parametrize("image", list(IMAGES))
def test_user_creation_succeeds_on_the_images_users(image: str, tmp_path: Path) -> None:
    _command, users = IMAGES[image]
    root = make_root(tmp_path / "root", users)
    result = run_in_root(root, user_creation_step(BLOCK))
    assert result.returncode == 0, result.stderr
    after = users_of(root)
    assert {n: after[n] for n, _ in users} == dict(users)
    assert len(set(after.values())) == len(after)
    print(f"{image}: moltbot is uid {after['moltbot']} next to {dict(users)}")
