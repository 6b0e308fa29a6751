#!/usr/bin/env bash
# Installs what the tests need beyond Go, idempotently: Debian packages via
# apt-get (as root, as on CI and the developer machines) and the npm
# packages of the browser tests (e2e/browser, pinned by its lock file).
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
command -v curl >/dev/null || need+=(curl)
command -v gcc >/dev/null || need+=(gcc libc6-dev) # go test -race needs cgo
command -v node >/dev/null || need+=(nodejs npm)
[[ -x /usr/bin/chromium ]] || need+=(chromium) # the sign-in test's browser
command -v redis-server >/dev/null || need+=(redis-server) # shared usage counters (e2e, usage)
if ((${#need[@]})); then
  echo "deps: installing ${need[*]}"
  if [[ $(id -u) -ne 0 ]]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}"
fi
# playwright-core drives Debian's Chromium; it downloads no browser.
lock=e2e/browser/package-lock.json
stamp=e2e/browser/node_modules/.installed-lock
if ! cmp -s "$lock" "$stamp" 2>/dev/null; then
  echo "deps: npm ci in e2e/browser"
  npm ci --prefix e2e/browser --no-audit --no-fund --loglevel=error
  cp "$lock" "$stamp"
fi
echo "deps: ok (go $(go env GOVERSION), curl $(curl --version | head -1 | cut -d' ' -f2), node $(node --version), $(/usr/bin/chromium --version 2>/dev/null | head -1), $(redis-server --version | cut -d' ' -f1-3))"
