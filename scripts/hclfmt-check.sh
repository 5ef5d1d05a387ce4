#!/bin/sh
# Check the formatting (and syntax) of the Terraform files offline with hclfmt, the hclwrite
# formatter `terraform fmt` uses. No terraform binary is needed.
#
#   scripts/hclfmt-check.sh [FILE_OR_DIR ...]     (default: terraform/)
#
# hclfmt is taken from $HCLFMT, then PATH, then $HCLFMT_CACHE/hclfmt (default .tools/hclfmt);
# when none exists it is built there from Debian's sources:
#   apt-get install golang-go golang-github-hashicorp-hcl-v2-dev
# Exit codes: 0 formatted, 1 needs formatting or syntax error, 3 hclfmt unavailable.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
cache=${HCLFMT_CACHE:-$root/.tools}
gocode=/usr/share/gocode

find_hclfmt() {
    if [ -n "${HCLFMT:-}" ] && [ -x "$HCLFMT" ]; then echo "$HCLFMT"; return; fi
    if command -v hclfmt >/dev/null 2>&1; then command -v hclfmt; return; fi
    if [ -x "$cache/hclfmt" ]; then echo "$cache/hclfmt"; return; fi
    if command -v go >/dev/null 2>&1 && [ -d "$gocode/src/github.com/hashicorp/hcl/v2/cmd/hclfmt" ]; then
        mkdir -p "$cache"
        GOPATH=$gocode GO111MODULE=off GOFLAGS= GOCACHE="$cache/go-build" \
            go build -o "$cache/hclfmt" github.com/hashicorp/hcl/v2/cmd/hclfmt >&2 && echo "$cache/hclfmt"
    fi
}

hclfmt=$(find_hclfmt || true)
if [ -z "$hclfmt" ]; then
    echo "hclfmt unavailable: apt-get install golang-go golang-github-hashicorp-hcl-v2-dev (or set HCLFMT)" >&2
    exit 3
fi

[ $# -gt 0 ] || set -- "$root/terraform"
files=$(for target in "$@"; do
    if [ -d "$target" ]; then find "$target" -type f \( -name '*.tf' -o -name '*.tfvars' -o -name '*.tfvars.example' \); else echo "$target"; fi
done | sort)

errors=$(mktemp)
trap 'rm -f "$errors"' EXIT
status=0
for file in $files; do
    if ! "$hclfmt" -require-no-change "$file" >/dev/null 2>"$errors"; then
        status=1
        echo "needs formatting: $file" >&2
        cat "$errors" >&2
        "$hclfmt" "$file" 2>/dev/null | diff -u "$file" - >&2 || true
    fi
done
[ $status -eq 0 ] && echo "hclfmt: $(echo "$files" | wc -l) files formatted"
exit $status
