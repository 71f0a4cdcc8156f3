#!/usr/bin/env bash
# The reference product API in the stack being replaced (Django + DRF + graphene-django under
# gunicorn, bench/reference/README.md), for side-by-side figures in bench/product.sh.
#   bash bench/reference/serve.sh install   venv at target/reference-venv, pinned requirements
#   bash bench/reference/serve.sh start     gunicorn in the background, returns once it answers
#   bash bench/reference/serve.sh stop      stops it (pid file)
# start needs REF_DATABASE_URL (postgres://user@host:port/db, the product service's database)
# and REF_JWKS_URL (the auth service's JWK Set); optional: REF_LISTEN (127.0.0.1:18020),
# REF_WORKERS (2 x cores, sync workers), REF_PIN (a command prefix, e.g. "taskset -c 1"),
# REF_PIDFILE (target/reference.pid), REF_LOG (target/reference.log).
set -euo pipefail
cd "$(dirname "$0")/../.."

VENV=target/reference-venv
REQUIREMENTS=bench/reference/requirements.txt
PIDFILE=$(realpath -m "${REF_PIDFILE:-target/reference.pid}")
LOG=$(realpath -m "${REF_LOG:-target/reference.log}")

install() {
  # Skipped when the venv was built from the same requirements.
  if [ -x "$VENV/bin/gunicorn" ] && cmp -s "$REQUIREMENTS" "$VENV/requirements.txt"; then
    return 0
  fi
  if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV" 2>/dev/null || {
      apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
      python3 -m venv "$VENV"
    }
  fi
  "$VENV/bin/pip" install -q --disable-pip-version-check -r "$REQUIREMENTS"
  cp "$REQUIREMENTS" "$VENV/requirements.txt"
}

running() { [ -s "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }

start() {
  : "${REF_DATABASE_URL:?REF_DATABASE_URL is required (postgres://user@host:port/dbname)}"
  : "${REF_JWKS_URL:?REF_JWKS_URL is required (the JWK Set of the auth service)}"
  local listen=${REF_LISTEN:-127.0.0.1:18020}
  local workers=${REF_WORKERS:-$((2 * $(nproc)))}
  local pin=()
  read -r -a pin <<<"${REF_PIN:-}"
  if running; then
    echo "reference: already running (pid $(cat "$PIDFILE"))" >&2
    return 1
  fi
  if curl -s -o /dev/null "http://$listen/"; then
    echo "reference: something already answers on $listen" >&2
    return 1
  fi
  install
  mkdir -p "$(dirname "$PIDFILE")" "$(dirname "$LOG")"
  rm -f "$PIDFILE"
  # Bytecode goes under target/, not beside the sources.
  REF_DATABASE_URL=$REF_DATABASE_URL REF_JWKS_URL=$REF_JWKS_URL \
    PYTHONPYCACHEPREFIX=$PWD/target/reference-pycache \
    "${pin[@]}" "$VENV/bin/gunicorn" --chdir bench/reference refsite.wsgi:application \
    --bind "$listen" --workers "$workers" --worker-class sync \
    --log-level warning --pid "$PIDFILE" </dev/null >"$LOG" 2>&1 &
  local launched=$!
  # Up once the product list answers at all (401 without a token).
  for _ in $(seq 100); do
    if ! kill -0 "$launched" 2>/dev/null; then break; fi
    local code
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://$listen/api/v1/product/products/" || true)
    if [ "$code" != 000 ] && running; then return 0; fi
    sleep 0.2
  done
  echo "reference: gunicorn did not come up on $listen; log tail ($LOG):" >&2
  tail -n 30 "$LOG" >&2 || true
  kill "$launched" 2>/dev/null || true
  rm -f "$PIDFILE"
  return 1
}

stop() {
  running || { rm -f "$PIDFILE"; return 0; }
  local pid
  pid=$(cat "$PIDFILE")
  kill -TERM "$pid"
  # Graceful: gunicorn lets the workers finish, then removes the pid file.
  for _ in $(seq 150); do
    kill -0 "$pid" 2>/dev/null || { rm -f "$PIDFILE"; return 0; }
    sleep 0.2
  done
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$PIDFILE"
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 install|start|stop" >&2; exit 2 ;;
esac
