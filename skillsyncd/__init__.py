"""skillsyncd: keep an AI gateway's skills in step with a git repository."""

__version__ = "0.2.0"
