"""`python -m skillsyncd.container [--check] [--dockerfile PATH]`: install into a Dockerfile.

The thin shell around install.plan_install: read the Dockerfile and Dockerfile.patch, print
one line saying what was found and what changed, write only when something changes and
--check is not given. Exit 0 on success, 2 when the Dockerfile cannot take the block.
Imports nothing beyond the standard library and dockerfile-parse, so it runs before the
image exists, on the operator's machine (apply-dockerfile-patch.sh).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from skillsyncd.container.dockerfile import DockerfileError
from skillsyncd.container.install import block_template, plan_install

_PATCH = Path(__file__).resolve().parents[2] / "Dockerfile.patch"


def _write(path: Path, text: str) -> None:
    """Replace the file in one rename, keeping its mode: a crash leaves the old or the new one."""
    mode = path.stat().st_mode & 0o7777
    fd, tmp = tempfile.mkstemp(prefix=".Dockerfile.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m skillsyncd.container",
                                 description="Append the skillsyncd block to a gateway Dockerfile.")
    ap.add_argument("--dockerfile", type=Path, default=Path("Dockerfile"))
    ap.add_argument("--block", type=Path, default=_PATCH, help="the block's template (Dockerfile.patch)")
    ap.add_argument("--check", action="store_true", help="say what would change, write nothing")
    args = ap.parse_args(argv)
    name = str(args.dockerfile)
    try:
        dockerfile = args.dockerfile.read_text(encoding="utf-8")
        plan = plan_install(dockerfile, block_template(args.block.read_text(encoding="utf-8")))
        if plan.action and not args.check:
            _write(args.dockerfile, plan.text)
    except (OSError, UnicodeDecodeError) as exc:
        print(f"{name}: cannot read or write it: {exc}; nothing was changed", file=sys.stderr)
        return 2
    except DockerfileError as exc:
        print(f"{name}: {exc}; nothing was changed", file=sys.stderr)
        return 2
    print(f"{name}: {plan.summary(args.check)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
