#!/usr/bin/env bash
# The README's two commands.
#   ops/run.sh up [stockpulse up options]   run the whole product on embedded defaults
#   ops/run.sh test [pytest args]           lint, type-check and run the full test suite (with
#                                           args, pytest runs just what they select)
# Each installs what it needs and is missing: uv (from PyPI), PostgreSQL and Chromium (Debian).
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "need root (or sudo) to run: $*" >&2; exit 1; fi
}

apt_updated=""
apt_install() {
  if [ -z "$apt_updated" ]; then as_root apt-get update -qq; apt_updated=1; fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

ensure_uv() {
  export PATH="$HOME/.local/bin:$PATH"
  command -v uv >/dev/null && return
  echo "installing uv…"
  if ! python3 -m pip --version >/dev/null 2>&1; then apt_install python3-pip; fi
  python3 -m pip install --quiet --user uv 2>/dev/null \
    || python3 -m pip install --quiet --user --break-system-packages uv
}

ensure_postgres() {
  [ -n "${DATABASE_URL:-}" ] && return
  compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null && return
  echo "installing PostgreSQL (Debian package)…"
  apt_install postgresql
}

ensure_chromium() {
  command -v chromium >/dev/null && return
  echo "installing Chromium for the browser tests (Debian package)…"
  apt_install chromium
}

sync_env() {
  # Bytecode compiled once here (15 s on a new environment, nothing after): every process the
  # product and its tests start (worker, web, each nightly run, each CLI call) would otherwise
  # compile its imports again, PYTHONDONTWRITEBYTECODE or not (6.1 s against 2.0 s to import
  # the forecasting and web stacks).
  uv sync --frozen --quiet --compile-bytecode
}

command="${1:-}"
shift || true
case "$command" in
  up)
    ensure_uv; ensure_postgres; sync_env
    exec uv run --frozen stockpulse up "$@"
    ;;
  test)
    ensure_uv; ensure_postgres; ensure_chromium; sync_env
    uv run --frozen ruff check .
    uv run --frozen ruff format --check .
    uv run --frozen mypy
    if [ $# -gt 0 ]; then exec uv run --frozen pytest "$@"; fi
    # The whole suite. The accuracy tests are pure CPU (rolling backtests) while the rest mostly
    # waits on real services, so they run beside it, niced: the service tests keep the CPU they
    # need, and a CI run is about two minutes shorter. At nice 10 they still took enough of it
    # for the crash test's worker to fall 100 s behind a burst (its restart then waited 31-36 s
    # for /readyz, against 5 s alone); at 19 they get about 1.5 % of a busy core. With two
    # backtest processes they still took both cores whenever the rest paused, and the rest
    # took 14 min instead of 12: they run in one process, leaving the other core alone.
    # The rest runs on two pytest-xdist workers, a test file each at a time (module fixtures
    # start their own stacks): much of it waits on services, so a second worker fills the idle
    # core. 688 s against 869 s on one (2026-12-07). Three workers came to 613 s but starved
    # the niced accuracy tests past their timeout; with those on a worker of their own too,
    # 675 s, the crash test at 153 s instead of 70: two is the knee on two cores.
    accuracy_log="$(mktemp)"
    STOCKPULSE_ACCURACY_PROCESSES=1 nice -n 19 uv run --frozen pytest tests/accuracy \
      >"$accuracy_log" 2>&1 &
    accuracy=$!
    trap 'kill "$accuracy" 2>/dev/null || true; rm -f "$accuracy_log"' EXIT
    status=0
    # The slowest tests listed at the end: CI has 15 minutes.
    uv run --frozen pytest --ignore=tests/accuracy -n 2 --dist loadfile --durations=15 \
      || status=$?
    wait "$accuracy" || status=$?
    echo "--- tests/accuracy (run beside the rest) ---"
    cat "$accuracy_log"
    exit "$status"
    ;;
  *)
    echo "usage: ops/run.sh up [--port PORT] | ops/run.sh test [pytest args]" >&2
    exit 2
    ;;
esac
