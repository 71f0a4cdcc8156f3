#!/usr/bin/env bash
# Schemathesis over every service's OpenAPI document against a seeded `zv up` (its own
# databases, dropped on exit), as a project member (token and X-Project-ID): no answer may be
# a server error, and every documented answer must match its schema. Schemathesis is pinned
# (scripts/fuzz-requirements.txt) and installed from PyPI into target/schemathesis, a venv
# (`bash scripts/fuzz.sh install` only installs it). FUZZ_SERVICES="product order" narrows the
# run; FUZZ_ARGS passes options to Schemathesis (e.g. "--max-examples 50").
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=target/schemathesis
if [ ! -x "$VENV/bin/schemathesis" ]; then
  python3 -m venv "$VENV" 2>/dev/null || {
    apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
    python3 -m venv "$VENV"
  }
  "$VENV/bin/pip" install -q -r scripts/fuzz-requirements.txt
fi
[ "${1:-}" = install ] && exit 0
cargo build -q --locked -p zv
BIN=target/debug/zv

DB_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
ADDR=127.0.0.1:$PORT
export ZV_DATABASE_PREFIX="fuzz$(date +%s)$$_"
export ZV_DATA_DIR=$(mktemp -d)
export ZV_LOG_LEVEL=error
export ZV_RATE_LIMIT__ENABLED=false
WORK=$(mktemp -d)
PID=
cleanup() {
  [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
  for service in auth project product inventory order billing; do
    psql "$DB_URL" -qc "DROP DATABASE IF EXISTS \"${ZV_DATABASE_PREFIX}zv_${service}_db\" WITH (FORCE)" >/dev/null 2>&1 || true
  done
  rm -rf "$ZV_DATA_DIR" "$WORK"
}
trap cleanup EXIT

PASSWORD="Fuzz-pass-123"
$BIN user create --username fuzzer --email fuzzer@example.com --password "$PASSWORD" >/dev/null
ZV_LISTEN=$ADDR $BIN up > "$WORK/zv.log" 2>&1 & PID=$!
for _ in $(seq 150); do curl -sf "http://$ADDR/health/" >/dev/null && break; sleep 0.2; done

# The seed: one of each kind of row, so that `1` names a live row in most tables.
json() { python3 -c "import sys,json;print(json.load(sys.stdin)$1)"; }
call() { # METHOD PATH BODY
  curl -sf -X "$1" "http://$ADDR$2" -H 'content-type: application/json' \
    ${TOKEN:+-H "Authorization: Bearer $TOKEN"} ${PROJECT:+-H "X-Project-ID: $PROJECT"} -d "$3"
}
TOKEN=$(call POST /api/v1/auth/auth/token/ "{\"username\":\"fuzzer\",\"password\":\"$PASSWORD\"}" | json '["access"]')
PROJECT=$(call POST /api/v1/project/projects/ '{"title":"Fuzz"}' | json '["id"]')
TOKEN=$(call POST /api/v1/auth/auth/token/change_project/ "{\"project_id\":$PROJECT}" | json '["access"]')
call POST /api/v1/product/products/categories/ '{"name":"Tools"}' >/dev/null
call POST /api/v1/product/products/tags/ '{"name":"new"}' >/dev/null
call POST /api/v1/product/products/brands/ '{"name":"Acme"}' >/dev/null
call POST /api/v1/product/products/collections/ '{"name":"Spring"}' >/dev/null
for n in 1 2; do
  call POST /api/v1/product/products/ "{\"name\":\"Hammer $n\",\"sku\":\"H-$n\",\"price\":\"9.99\",\"status\":\"active\",\"category\":1}" >/dev/null
done
call POST /api/v1/product/products/1/variants/ '{"name":"Large","sku":"H-1-L","price":"11.50"}' >/dev/null
call POST /api/v1/inventory/warehouses/ '{"name":"Main","code":"MAIN"}' >/dev/null
call POST /api/v1/inventory/restock/ '{"supplier":"Acme","items":[{"product_id":1,"quantity":500},{"product_id":2,"quantity":500}]}' >/dev/null
call POST /api/v1/order/orders/ '{"items":[{"product_id":1,"quantity":1}]}' >/dev/null
call POST /api/v1/order/orders/ '{"items":[{"product_id":2,"quantity":2}]}' >/dev/null
call POST /api/v1/billing/coupons/ '{"code":"FUZZ10","discount_type":"percentage","discount_value":"10"}' >/dev/null

# Order matters: auth's logout revokes the member's token and project's delete removes the
# project, so the operations that end a session run last, after project's.
SESSION_ENDS='/auth/(logout|password/change)/'
fuzz() { # SERVICE [ARGS…]
  local service=$1; shift
  echo "== $service $*"
  "$VENV/bin/schemathesis" --config-file scripts/schemathesis.toml run \
    "http://$ADDR/api/v1/$service/openapi.json" --url "http://$ADDR" \
    -H "Authorization: Bearer $TOKEN" -H "X-Project-ID: $PROJECT" \
    --generation-with-security-parameters false \
    --workers 1 --no-color ${FUZZ_ARGS:-} "$@"
}
status=0
if [ -n "${FUZZ_SERVICES:-}" ]; then
  for service in $FUZZ_SERVICES; do fuzz "$service" || status=1; done
else
  for service in product inventory order billing; do fuzz "$service" || status=1; done
  fuzz auth --exclude-path-regex "$SESSION_ENDS" || status=1
  fuzz project || status=1
  fuzz auth --include-path-regex "$SESSION_ENDS" || status=1
fi
if ! kill -0 "$PID" 2>/dev/null; then
  echo "zv up is gone:" >&2; tail -50 "$WORK/zv.log" >&2; exit 1
fi
echo "zv up after the run: alive, RSS $(($(awk '/VmRSS/ {print $2}' /proc/$PID/status) / 1024)) MiB"
exit $status
