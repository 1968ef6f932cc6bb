#!/usr/bin/env bash
# Installs what `make run` and `make test` need on a fresh Debian machine: PostgreSQL's binaries (and the
# ops-check tools' system packages), then one virtual environment from the hash-locked requirements.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=${VENV:-.venv}
apt_packages=(postgresql postgresql-client shellcheck prometheus python3-apt wrk)

missing=()
for package in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: please install: ${missing[*]} (apt-get needs root)" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install -q --disable-pip-version-check --require-hashes -r requirements/dev.txt
"$venv/bin/python" -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e service
