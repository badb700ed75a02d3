#!/bin/sh
# Apply the Dockerfile patch that fits the Dockerfile in the current directory, and say which.
#   Dockerfile.patch      the Dockerfile ends with ENTRYPOINT ["/app/entrypoint.sh"]
#   Dockerfile.cmd.patch  it has ENTRYPOINT [] then CMD ["sh", "/app/entrypoint.sh"]
#                         (comments and ARG CACHE_BUST=... may follow)
# Usage, next to the Dockerfile: sh skillsyncd/apply-dockerfile-patch.sh [--check]
# Exit 0: applied (or, with --check, would apply); 1: neither fits, nothing changed.
set -eu
here="$(dirname "$0")"
check=""
if [ "${1:-}" = "--check" ]; then
    check=1
fi
for name in Dockerfile.patch Dockerfile.cmd.patch; do
    if git apply --check "$here/$name" 2>/dev/null; then
        if [ -n "$check" ]; then
            echo "$name fits this Dockerfile"
        else
            git apply "$here/$name"
            echo "applied $name"
        fi
        exit 0
    fi
done
echo "neither Dockerfile.patch nor Dockerfile.cmd.patch fits this Dockerfile: it must end with" >&2
echo '  ENTRYPOINT ["/app/entrypoint.sh"]   or   ENTRYPOINT [] + CMD ["sh", "/app/entrypoint.sh"]' >&2
echo "see docs/operations.md, \"Any other ending\"; nothing was changed" >&2
exit 1
