#!/bin/sh
# Fetch every page of a GitHub listing. Usage: paginate.sh URL
set -eu
url="$1"
token="${GITHUB_TOKEN:?set GITHUB_TOKEN (api_key=YOUR_GITHUB_TOKEN_HERE)}"
while [ -n "$url" ]; do
  curl -sS -D headers.txt -H "Authorization: Bearer ${token}" "$url"
  url=$(grep -i '^link:' headers.txt | sed -n 's/.*<\([^>]*\)>; rel="next".*/\1/p')
done
