"""PID 1 of the gateway image: supervisord, with an exit status that says when the gateway died.

supervisord itself always exits 0, so a platform restart policy of "on failure" would never
bring back a container whose gateway could not start. supervisord.conf's gateway-watch
listener writes SKILLSYNC_GATEWAY_FATAL_FILE before it stops supervisord; this wrapper runs
supervisord in this same process (it stays PID 1, reaps and receives the platform's
signals itself) and exits 1 when that file exists afterwards.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from supervisor import supervisord

DEFAULT_FATAL_FILE = "/run/skillsyncd-gateway-fatal"
EXIT_GATEWAY_FATAL = 1


def fatal_file() -> Path:
    """Where gateway-watch leaves word that the gateway is FATAL (the same default as the conf)."""
    return Path(os.environ.get("SKILLSYNC_GATEWAY_FATAL_FILE") or DEFAULT_FATAL_FILE)


def main(argv: list[str] | None = None) -> int:
    flag = fatal_file()
    # A restarted container keeps its files: the word from the last run must not count.
    flag.unlink(missing_ok=True)
    supervisord.main(sys.argv[1:] if argv is None else argv)
    if flag.exists():
        print(f"skillsyncd.container.supervise: the gateway could not be started ({flag}): "
              f"exit {EXIT_GATEWAY_FATAL}", file=sys.stderr, flush=True)
        return EXIT_GATEWAY_FATAL
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
