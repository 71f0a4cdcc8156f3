#!/usr/bin/env bash
# Orders placed per second through the gateway (POST /api/v1/order/orders/, 3 lines of 1000
# SKUs), and the end-to-end latency from placement to the order's invoice. Each placement prices
# the lines in the product service, writes the order, reserves the stock in the inventory service
# (locked rows, allocations, stock events) and commits the order with its `order.created` event;
# the billing service turns that event into the invoice (in-process bus, as `zv up` runs).
# Needs PostgreSQL (ZV_DATABASE_URL) and wrk (installed from Debian if missing).
#   bash bench/orders.sh              DURATION=20s CONNECTIONS=32 bash bench/orders.sh
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-16}
SKUS=1000
ADDR=127.0.0.1:18012
DB_URL=${ZV_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}

source bench/common.sh

ORDER_DB="${DB_URL%/*}/${ZV_DATABASE_PREFIX}zv_order_db"
BILLING_DB="${DB_URL%/*}/${ZV_DATABASE_PREFIX}zv_billing_db"
IDS=$(paste -sd, - < "$WORK/ids")
cat > "$WORK/orders.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $TOKEN"
local ids = {$IDS}
request = function()
  local chosen, used = {}, {}
  while #chosen < 3 do
    local id = ids[math.random(#ids)]
    if not used[id] then used[id] = true; chosen[#chosen + 1] = '{"product_id":' .. id .. ',"quantity":1}' end
  end
  return wrk.format(nil, nil, nil, '{"items":[' .. table.concat(chosen, ",") .. ']}')
end
local shown = 0
response = function(status, headers, body)
  if status ~= 201 and shown < 3 then
    shown = shown + 1
    io.stderr:write("non-201: " .. status .. " " .. body .. "\\n")
  end
end
LUA
# One order by hand first: it must be placed and invoiced.
FIRST=$(head -n 3 "$WORK/ids" | python3 -c 'import json,sys; print(json.dumps({"items": [{"product_id": int(l), "quantity": 1} for l in sys.stdin if l.strip()]}))')
code=$(curl -s -o "$WORK/first.json" -w '%{http_code}' -X POST "http://$ADDR/api/v1/order/orders/" \
  -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' --data "$FIRST")
[ "$code" = 201 ] || { echo "placement check failed ($code): $(cat "$WORK/first.json")"; exit 1; }
wrk -t1 -c"$CONNECTIONS" -d2s -s "$WORK/orders.lua" "http://$ADDR/api/v1/order/orders/" >/dev/null

START=$(psql -At "$ORDER_DB" -c "SELECT COALESCE(max(id), 0) FROM orders")
wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency -s "$WORK/orders.lua" "http://$ADDR/api/v1/order/orders/" > "$WORK/wrk.txt"
# Let the last invoices land, then read both timestamps of every order of the run.
for _ in $(seq 100); do
  placed=$(psql -At "$ORDER_DB" -c "SELECT count(*) FROM orders WHERE id > $START AND status = 'pending'")
  invoiced=$(psql -At "$BILLING_DB" -c "SELECT count(*) FROM invoices WHERE source_type = 'order' AND source_id > $START")
  [ "$placed" = "$invoiced" ] && break
  sleep 0.2
done
psql -At -F' ' "$ORDER_DB" -c "SELECT id, extract(epoch FROM updated_at) FROM orders WHERE id > $START AND status = 'pending'" > "$WORK/placed"
psql -At -F' ' "$BILLING_DB" -c "SELECT source_id, extract(epoch FROM created_at) FROM invoices WHERE source_type = 'order' AND source_id > $START" > "$WORK/invoiced"
DUPES=$(psql -At "$BILLING_DB" -c "SELECT count(*) - count(DISTINCT source_id) FROM invoices WHERE source_type = 'order'")

python3 - "$WORK/wrk.txt" "$WORK/placed" "$WORK/invoiced" "$CONNECTIONS" "$DURATION" "$DUPES" <<'PY'
import re, statistics, sys
text = open(sys.argv[1]).read()
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
p50 = re.search(r"50%\s+([\d.]+\w+)", text).group(1)
p99 = re.search(r"99%\s+([\d.]+\w+)", text).group(1)
errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
errors = int(errors.group(1)) if errors else 0
placed = dict(l.split() for l in open(sys.argv[2]) if l.strip())
invoiced = dict(l.split() for l in open(sys.argv[3]) if l.strip())
lags = sorted((float(invoiced[k]) - float(v)) * 1000 for k, v in placed.items() if k in invoiced)
missing = len(placed) - len(lags)
conns, dur, dupes = sys.argv[4], sys.argv[5], int(sys.argv[6])
q = lambda p: lags[min(len(lags) - 1, int(p * len(lags)))] if lags else float("nan")
print(f"\n3-line orders through the gateway, {conns} connections, {dur}\n")
print("| measure | value |")
print("|---|---:|")
print(f"| orders placed per second | {rps:.0f} |")
print(f"| placement latency p50 / p99 | {p50} / {p99} |")
print(f"| placement → invoice, p50 / p99 / max (all {len(lags)} orders of the run) | {q(0.5):.1f} ms / {q(0.99):.1f} ms / {lags[-1] if lags else float('nan'):.1f} ms |")
print(f"\nnon-2xx answers: {errors}; orders without an invoice: {missing}; duplicate invoices: {dupes}")
if errors or missing or dupes:
    sys.exit("some requests failed or invoices are missing or doubled: the figures above do not count")
PY
