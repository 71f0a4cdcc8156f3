#!/usr/bin/env bash
# What an idle `zv up` costs: the CPU time it uses and the SQL statements it runs per minute
# when nobody writes (after one order has gone through, so every relay and consumer has work
# behind it). Statements are counted from the server's own statement log.
# Needs PostgreSQL (ZV_DATABASE_URL).
#   bash bench/idle.sh            WINDOW=120 bash bench/idle.sh
set -euo pipefail
cd "$(dirname "$0")/.."

WINDOW=${WINDOW:-60}
ADDR=127.0.0.1:18013
DB_URL=${ZV_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
cargo build --release -q -p zv
BIN=target/release/zv

export ZV_DATABASE_PREFIX="idle$(date +%s)$$_"
export ZV_DATA_DIR=$(mktemp -d)
export ZV_LOG_LEVEL="warn,sqlx::query=debug"
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

$BIN user create --username idle --email idle@example.com --password Idle-pass-123 >/dev/null
ZV_LISTEN=$ADDR $BIN up > "$WORK/zv.log" 2>&1 & PID=$!
for _ in $(seq 100); do curl -sf "http://$ADDR/health/" >/dev/null && break; sleep 0.2; done
json() { python3 -c "import sys,json;print(json.load(sys.stdin)$1)"; }
call() { curl -sf -X POST "http://$ADDR$1" -H 'content-type: application/json' ${TOKEN:+-H "Authorization: Bearer $TOKEN"} -d "$2"; }
TOKEN=$(call /api/v1/auth/auth/token/ '{"username":"idle","password":"Idle-pass-123"}' | json '["access"]')
PROJECT=$(call /api/v1/project/projects/ '{"title":"Idle"}' | json '["id"]')
TOKEN=$(call /api/v1/auth/auth/token/change_project/ "{\"project_id\":$PROJECT}" | json '["access"]')
call /api/v1/product/products/ '{"name":"Lamp","price":"10","status":"active","stock_quantity":5}' >/dev/null
call /api/v1/inventory/warehouses/ '{"name":"Main","code":"MAIN"}' >/dev/null
call /api/v1/inventory/restock/ '{"supplier":"Acme","items":[{"product_id":1,"quantity":5}]}' >/dev/null
call /api/v1/order/orders/ '{"items":[{"product_id":1,"quantity":1}]}' >/dev/null
sleep 10

ticks() { awk '{print $14 + $15}' "/proc/$PID/stat"; }
statements() { grep -ac '"target":"sqlx::query"' "$WORK/zv.log" || true; }
T0=$(ticks); S0=$(statements)
sleep "$WINDOW"
T1=$(ticks); S1=$(statements)
HZ=$(getconf CLK_TCK)
python3 - "$T0" "$T1" "$S0" "$S1" "$HZ" "$WINDOW" <<'PY'
import sys
t0, t1, s0, s1, hz, window = map(int, sys.argv[1:])
cpu = (t1 - t0) / hz
print(f"\nidle `zv up` over {window} s (after one order went through)\n")
print("| measure | value |")
print("|---|---:|")
print(f"| CPU time | {cpu:.2f} s ({cpu / window:.2%} of one core) |")
print(f"| SQL statements per minute | {(s1 - s0) * 60 / window:.0f} |")
PY
