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

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
cargo build --release -q -p zv
BIN=target/release/zv

RUN_ID=$(date +%s)$$
export ZV_DATABASE_PREFIX="bench${RUN_ID}_"
export ZV_DATA_DIR=$(mktemp -d)
export ZV_LOG_LEVEL=warn
export ZV_RATE_LIMIT__ENABLED=false
export ZV_DATABASE_MAX_CONNECTIONS=$CONNECTIONS
PASSWORD="Bench-pass-123"
PRODUCT_DB="${ZV_DATABASE_PREFIX}zv_product_db"
WORK=$(mktemp -d)

cleanup() {
  kill "${PIDS[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
  for service in auth project product inventory order billing; do
    psql "$DB_URL" -qc "DROP DATABASE IF EXISTS \"${ZV_DATABASE_PREFIX}zv_${service}_db\" WITH (FORCE)" >/dev/null 2>&1 || true
  done
  rm -rf "$ZV_DATA_DIR" "$WORK"
}
PIDS=()
trap cleanup EXIT

$BIN user create --username bench --email bench@example.com --password "$PASSWORD" >/dev/null
ZV_LISTEN=$ADDR $BIN up 2>/dev/null & PIDS+=($!)
for _ in $(seq 100); do curl -sf "http://$ADDR/health/" >/dev/null && break; sleep 0.2; done

json() { python3 -c "import sys,json;print(json.load(sys.stdin)$1)"; }
TOKEN=$(curl -sf -X POST "http://$ADDR/api/v1/auth/auth/token/" -H 'content-type: application/json' \
  -d "{\"username\":\"bench\",\"password\":\"$PASSWORD\"}" | json '["access"]')
PROJECT=$(curl -sf -X POST "http://$ADDR/api/v1/project/projects/" -H "Authorization: Bearer $TOKEN" \
  -H 'content-type: application/json' -d '{"title":"Bench"}' | json '["id"]')
TOKEN=$(curl -sf -X POST "http://$ADDR/api/v1/auth/auth/token/change_project/" -H "Authorization: Bearer $TOKEN" \
  -H 'content-type: application/json' -d "{\"project_id\":$PROJECT}" | json '["access"]')
# The products in bulk (the columns the API writes); the inventory service learns them on first
# use, and their stock is received through the API in batches of 200 lines.
psql "${DB_URL%/*}/$PRODUCT_DB" -qc "
  INSERT INTO products (project_id, name_en, slug, sku, status, price, created_by, updated_by)
  SELECT $PROJECT, 'Product ' || n, 'product-' || n, 'SKU-' || n, 'active', 9.99, 1, 1
  FROM generate_series(1, $SKUS) AS n;" >/dev/null
psql -At "${DB_URL%/*}/$PRODUCT_DB" -c "SELECT id FROM products WHERE project_id = $PROJECT ORDER BY id" > "$WORK/ids"
python3 - "$WORK/ids" "$WORK" <<'PY'
import json, sys
ids = [int(l) for l in open(sys.argv[1]) if l.strip()]
for n in range(0, len(ids), 200):
    lines = [{"product_id": i, "quantity": 1000000} for i in ids[n:n + 200]]
    json.dump({"supplier": "Bench", "items": lines}, open(f"{sys.argv[2]}/restock{n // 200}.json", "w"))
PY
for f in "$WORK"/restock*.json; do
  curl -sf -X POST "http://$ADDR/api/v1/inventory/restock/" -H "Authorization: Bearer $TOKEN" \
    -H 'content-type: application/json' --data @"$f" >/dev/null
done

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
