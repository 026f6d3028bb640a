#!/usr/bin/env bash
# Rebuilds tests/fmt/golden/ from tests/fmt/input/ with HashiCorp's own
# formatter (hclwrite.Format, what `terraform fmt` runs), built offline from
# Debian's packages. Not run by CI: the committed goldens are the contract.
#
#   apt-get install golang-go golang-github-hashicorp-hcl-v2-dev
#   tests/fmt/regenerate.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/src/hclfmt"
cp "$here/hclfmt/main.go" "$work/src/hclfmt/"
(cd "$work/src/hclfmt" &&
  GO111MODULE=off GOPATH="$work:/usr/share/gocode" GOCACHE="$work/cache" \
    go build -o "$work/hclfmt" .)
mkdir -p "$here/golden"
for input in "$here"/input/*.hcl; do
  "$work/hclfmt" < "$input" > "$here/golden/$(basename "$input")"
done
echo "wrote $(ls "$here/golden" | wc -l) goldens with $(dpkg-query -W -f '${Package} ${Version}' golang-github-hashicorp-hcl-v2-dev)"
