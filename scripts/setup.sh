#!/usr/bin/env bash
# Prepare this machine for the demo and the tests: Debian packages (when root), the
# virtualenv with the requirements at the versions constraints.txt pins, and a
# project-local Airflow home (SQLite).
# Idempotent and quick on a second run. One environment serves the demo and the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
say() { echo "[setup] $*" >&2; }

# --- Debian packages ------------------------------------------------------------------
# mysqlclient builds against libmysqlclient (pkg-config finds it); Swift with s3api is the
# local S3 store that, like COS, insists on Content-MD5.
need=()
dpkg -s pkg-config >/dev/null 2>&1 || need+=(pkg-config)
dpkg -s default-libmysqlclient-dev >/dev/null 2>&1 || need+=(default-libmysqlclient-dev)
command -v gcc >/dev/null 2>&1 || need+=(gcc)
# chromium + chromium-driver: the dashboard's browser test drives a real headless Chromium.
for p in swift swift-proxy swift-account swift-container swift-object chromium chromium-driver; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if ((${#need[@]})); then
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    say "installing Debian packages: ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null 2>&1 \
      || { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}"; }
  else
    say "missing Debian packages; run: sudo apt-get install -y ${need[*]}"; exit 1
  fi
fi

# --- Python virtualenv ----------------------------------------------------------------
PY=""
for cand in python3.11 python3; do
  if command -v "$cand" >/dev/null && "$cand" -c 'import sys; sys.exit(sys.version_info[:2] < (3, 11))'; then PY=$cand; break; fi
done
[[ -n $PY ]] || { say "Python 3.11 or newer is required"; exit 1; }
req=requirements-dev.txt  # includes requirements.txt
# Ranges from requirements*.txt, exact versions from constraints.txt (what the tests ran):
# a change to any of the three reinstalls.
stamp=.venv/.installed-$(cat requirements.txt "$req" constraints.txt | sha256sum | cut -c1-16)
if [[ ! -f $stamp ]]; then
  [[ -x .venv/bin/python ]] || { say "creating .venv with $PY"; "$PY" -m venv .venv; }
  say "installing $req into .venv (about a minute the first time)"
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  .venv/bin/python -m pip install -q -r "$req" -c constraints.txt
  rm -f .venv/.installed-*; touch "$stamp"
fi
say "ready: $(.venv/bin/python -c 'import airflow, sys; print("Python", sys.version.split()[0], "Airflow", airflow.__version__)')"
