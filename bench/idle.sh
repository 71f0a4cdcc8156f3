#!/usr/bin/env bash
# What an idle `zv up` costs: the CPU time it uses and the SQL statements it runs per minute
# when nobody writes (after one order has gone through, so every relay and consumer has work
# behind it). Statements are counted from the server's own statement log.
# Needs PostgreSQL (ZV_DATABASE_URL).
#   bash bench/idle.sh            WINDOW=120 bash bench/idle.sh
set -euo pipefail
cd "$(dirname "$0")/.."

WINDOW=${WINDOW:-60}
SKUS=1
CONNECTIONS=4
ADDR=127.0.0.1:18013
DB_URL=${ZV_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
export ZV_LOG_LEVEL="warn,sqlx::query=debug"

source bench/common.sh

curl -sf -X POST "http://$ADDR/api/v1/order/orders/" -H "Authorization: Bearer $TOKEN" \
  -H 'content-type: application/json' -d "{\"items\":[{\"product_id\":$(head -n1 "$WORK/ids"),\"quantity\":1}]}" >/dev/null
sleep 10

PID=${PIDS[0]}
ticks() { awk '{print $14 + $15}' "/proc/$PID/stat"; }
statements() { grep -ac '"target":"sqlx::query"' "$WORK/zv.log" || true; }
T0=$(ticks); S0=$(statements)
sleep "$WINDOW"
T1=$(ticks); S1=$(statements)
python3 - "$T0" "$T1" "$S0" "$S1" "$(getconf CLK_TCK)" "$WINDOW" <<'PY'
import sys
t0, t1, s0, s1, hz, window = map(int, sys.argv[1:])
cpu = (t1 - t0) / hz
print(f"\nidle `zv up` over {window} s (after one order went through)\n")
print("| measure | value |")
print("|---|---:|")
print(f"| CPU time | {cpu:.2f} s ({cpu / window:.2%} of one core) |")
print(f"| SQL statements per minute | {(s1 - s0) * 60 / window:.0f} |")
PY
