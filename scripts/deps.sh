#!/usr/bin/env bash
# Installs what the tests need beyond Go, idempotently: Debian packages via
# apt-get (as root, as on CI and the developer machines).
set -euo pipefail
need=()
command -v curl >/dev/null || need+=(curl)
command -v gcc >/dev/null || need+=(gcc libc6-dev) # go test -race needs cgo
if ((${#need[@]})); then
  echo "deps: installing ${need[*]}"
  if [[ $(id -u) -ne 0 ]]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}"
fi
echo "deps: ok (go $(go env GOVERSION), curl $(curl --version | head -1 | cut -d' ' -f2))"
