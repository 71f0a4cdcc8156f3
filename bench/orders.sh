#!/usr/bin/env bash
# Order placement against its limit, side by side in one run (rounds alternating, medians):
#   placement      POST /api/v1/order/orders/ through the gateway, 3 lines of 1000 SKUs: prices
#                  the lines (product), takes the order's id and number with the settings,
#                  reserves the stock (inventory: rows read, then held with allocations and stock
#                  events in one statement, or under row locks when a row changed meanwhile),
#                  then writes the order `pending` with its lines, history and `order.created` in
#                  one statement; billing turns the event into the invoice (in-process bus, as
#                  `zv up` runs).
#   reservation    POST /api/v1/inventory/reservations/, 3 lines of 1000 SKUs (its REST answer).
#   least SQL      pgbench (prepared) on the hand-written minimal transactions of the same work:
#                  bench/sql/order_placement.sql (order, lines, history, event) on the order
#                  database and bench/sql/reservation.sql (conditional holds, reservation,
#                  allocations, events) on the inventory database. A placement needs one of each,
#                  so the limit of placements is 1 / (1/order + 1/reservation).
# Then the lag from each placement to its invoice (p50/p99/max over every order of the run).
# PostgreSQL is pinned to core 0, the server and the load generators to the other core(s).
# Needs PostgreSQL (ZV_DATABASE_URL), pgbench and wrk (installed from Debian if missing).
#   bash bench/orders.sh              DURATION=20s ROUNDS=5 CONNECTIONS=32 bash bench/orders.sh
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
ROUNDS=${ROUNDS:-3}
CONNECTIONS=${CONNECTIONS:-16}
SKUS=1000
ADDR=127.0.0.1:18012
DB_URL=${ZV_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
command -v pgbench >/dev/null || { apt-get update -qq && apt-get install -y -qq postgresql-contrib >/dev/null; }

PIN_PG=1
source bench/common.sh

ORDER_DB="${DB_URL%/*}/${ZV_DATABASE_PREFIX}zv_order_db"
BILLING_DB="${DB_URL%/*}/${ZV_DATABASE_PREFIX}zv_billing_db"
INVENTORY_DB="${DB_URL%/*}/${ZV_DATABASE_PREFIX}zv_inventory_db"
IDS=$(paste -sd, - < "$WORK/ids")
lua() { # $1 = the body's extra JSON
  cat <<LUA
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
  return wrk.format(nil, nil, nil, '{"items":[' .. table.concat(chosen, ",") .. ']$1}')
end
local shown = 0
response = function(status, headers, body)
  if status ~= 201 and shown < 3 then
    shown = shown + 1
    io.stderr:write("non-201: " .. status .. " " .. body .. "\\n")
  end
end
LUA
}
lua "" > "$WORK/orders.lua"
lua ',"expires_at":null' > "$WORK/reservations.lua"
ORDERS="http://$ADDR/api/v1/order/orders/"
RESERVATIONS="http://$ADDR/api/v1/inventory/reservations/"

# One order by hand first: it must be placed and invoiced.
FIRST=$(head -n 3 "$WORK/ids" | python3 -c 'import json,sys; print(json.dumps({"items": [{"product_id": int(l), "quantity": 1} for l in sys.stdin if l.strip()]}))')
code=$(curl -s -o "$WORK/first.json" -w '%{http_code}' -X POST "$ORDERS" \
  -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' --data "$FIRST")
[ "$code" = 201 ] || { echo "placement check failed ($code): $(cat "$WORK/first.json")"; exit 1; }
"${PIN[@]}" wrk -t1 -c"$CONNECTIONS" -d2s -s "$WORK/orders.lua" "$ORDERS" >/dev/null
# Fresh statistics in every service database, as autovacuum gives a running shop once a table
# has grown (this machine's PostgreSQL may run without it): a plan cached while a table was
# empty, such as a foreign key's check, would otherwise scan the whole table for the rest of
# the run.
analyze_all() {
  for service in auth project product inventory order billing; do
    psql -q "${DB_URL%/*}/${ZV_DATABASE_PREFIX}zv_${service}_db" -c "ANALYZE" >/dev/null
  done
}
analyze_all

# The least SQL's inputs: its outbox (not relayed), the first product and stock row (the ids of
# both are consecutive) and events of the real size.
for db in "$ORDER_DB" "$INVENTORY_DB"; do
  psql -q "$db" -c "CREATE TABLE bench_outbox (LIKE zv_outbox INCLUDING ALL)"
done
read -r FIRST_ROW ROWS SPAN < <(psql -At -F' ' "$INVENTORY_DB" -c \
  "SELECT min(id), count(*), max(id) - min(id) + 1 FROM stock_items WHERE project_id = $PROJECT")
FIRST_PRODUCT=$(head -n 1 "$WORK/ids")
[ "$ROWS" = "$SKUS" ] && [ "$SPAN" = "$SKUS" ] && [ "$(tail -n 1 "$WORK/ids")" = $((FIRST_PRODUCT + SKUS - 1)) ] \
  || { echo "the stock rows or products are not consecutive: the least SQL cannot address them"; exit 1; }
ORDER_EVENT=$(psql -At "$ORDER_DB" -c "SELECT envelope FROM zv_outbox WHERE event_type = 'order.created' LIMIT 1")
STOCK_EVENT=$(psql -At "$INVENTORY_DB" -c "SELECT envelope FROM zv_outbox WHERE event_type = 'inventory.stock_changed' LIMIT 1")

START=$(psql -At "$ORDER_DB" -c "SELECT COALESCE(max(id), 0) FROM orders")
wrk_row() { # $1 = name, $2 = script, $3 = url
  "${PIN[@]}" wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency -s "$2" "$3" > "$WORK/wrk.txt"
  python3 - "$1" "$WORK/wrk.txt" >> "$WORK/rows" <<'PY'
import re, sys
text = open(sys.argv[2]).read()
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
p50 = re.search(r"50%\s+([\d.]+\w+)", text).group(1)
p99 = re.search(r"99%\s+([\d.]+\w+)", text).group(1)
errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
print(f"{sys.argv[1]}\t{rps:.0f}\t{p50}\t{p99}\t{errors.group(1) if errors else 0}")
PY
}
pgbench_row() { # $1 = name, $2 = database, $3 = script, $4 = product or stock row, $5 = event
  local tps
  tps=$("${PIN[@]}" pgbench -n -M prepared -c "$CONNECTIONS" -j 1 -T "${DURATION%s}" \
    -D project="$PROJECT" -D first="$4" -D envelope="$5" -f "$3" "$2" 2>&1 \
    | python3 -c 'import re,sys;t=sys.stdin.read();m=re.search(r"tps = ([\d.]+)", t);print(round(float(m.group(1))) if m and "aborted" not in t else 0)')
  printf '%s\t%s\t\t\t0\n' "$1" "$tps" >> "$WORK/rows"
  # Tens of thousands of rows in seconds, as no shop writes them: the statistics catch up now
  # (autovacuum would, a minute later), so the next rows are not planned on stale ones.
  psql -q "$2" -c "ANALYZE" >/dev/null
}
# Placements whose invoice is not there yet, and events not yet relayed: the next row starts
# when the platform is quiet again (each row pays for its own events, not the last row's).
behind() {
  local placed invoiced pending
  placed=$(psql -At "$ORDER_DB" -c "SELECT count(*) FROM orders WHERE id > $START AND status = 'pending' AND source <> 'pgbench'")
  invoiced=$(psql -At "$BILLING_DB" -c "SELECT count(*) FROM invoices WHERE source_type = 'order' AND source_id > $START")
  pending=0
  for db in "$ORDER_DB" "$INVENTORY_DB" "$BILLING_DB"; do
    pending=$((pending + $(psql -At "$db" -c "SELECT count(*) FROM zv_outbox WHERE published_at IS NULL AND dead_at IS NULL")))
  done
  echo $((placed - invoiced + pending))
}
settle() {
  for _ in $(seq 600); do [ "$(behind)" = 0 ] && { analyze_all; return; }; sleep 0.2; done
  echo "still behind after 120 s" >&2
}

: > "$WORK/rows"
for round in $(seq "$ROUNDS"); do
  echo "round $round of $ROUNDS" >&2
  pgbench_row order_sql "$ORDER_DB" bench/sql/order_placement.sql "$FIRST_PRODUCT" "$ORDER_EVENT"
  pgbench_row reservation_sql "$INVENTORY_DB" bench/sql/reservation.sql "$FIRST_ROW" "$STOCK_EVENT"
  wrk_row reservation "$WORK/reservations.lua" "$RESERVATIONS"
  settle
  psql -At "$ORDER_DB" -c "SELECT COALESCE(max(id), 0) FROM orders" >> "$WORK/round_starts"
  wrk_row placement "$WORK/orders.lua" "$ORDERS"
  settle
done

psql -At -F' ' "$ORDER_DB" -c "SELECT id, extract(epoch FROM updated_at) FROM orders WHERE id > $START AND status = 'pending' AND source <> 'pgbench'" > "$WORK/placed"
psql -At -F' ' "$BILLING_DB" -c "SELECT source_id, extract(epoch FROM created_at) FROM invoices WHERE source_type = 'order' AND source_id > $START" > "$WORK/invoiced"
DUPES=$(psql -At "$BILLING_DB" -c "SELECT count(*) - count(DISTINCT source_id) FROM invoices WHERE source_type = 'order'")
# Held units must still add up: every row's reserved units are its active allocations.
DIFF=$(psql -At "$INVENTORY_DB" -c "
  SELECT count(*) FROM stock_items s WHERE s.reserved_quantity <> COALESCE((SELECT sum(a.quantity)
    FROM reservation_allocations a JOIN reservation_items i ON i.id = a.item_id
    JOIN reservations r ON r.id = i.reservation_id WHERE a.inventory_id = s.id AND r.status = 'active'), 0)")

# What the server warned about during the run (failed deliveries wait for their retry and hold
# the events after them): how many, and the five most frequent.
python3 - "$WORK/zv.log" <<'PY'
import collections, json, sys
seen = collections.Counter()
for line in open(sys.argv[1], errors="replace"):
    try:
        entry = json.loads(line)
    except ValueError:
        continue
    if entry.get("level") in ("WARN", "ERROR"):
        fields = entry.get("fields", {})
        seen[f"{entry['level']} {fields.get('message', '')} {str(fields.get('error', ''))[:100]}"] += 1
print(f"server warnings and errors during the run: {sum(seen.values())}")
for text, count in seen.most_common(5):
    print(f"  {count} × {text}")
PY
python3 - "$WORK/rows" "$WORK/placed" "$WORK/invoiced" "$CONNECTIONS" "$DURATION" "$ROUNDS" "$DUPES" "$DIFF" "$WORK/round_starts" <<'PY'
import sys
rows_path, placed_path, invoiced_path, conns, dur, rounds, dupes, diff, starts_path = sys.argv[1:]
by = {}
for line in open(rows_path):
    name, rps, p50, p99, err = (line.rstrip("\n").split("\t") + [""] * 5)[:5]
    by.setdefault(name, []).append((float(rps), p50, p99, int(err or 0)))
median = {k: sorted(v, key=lambda r: r[0])[len(v) // 2] for k, v in by.items()}
errors = sum(r[3] for v in by.values() for r in v)
failed_sql = [k for k, v in by.items() if k.endswith("_sql") and any(r[0] == 0 for r in v)]
order_sql, reservation_sql = median["order_sql"][0], median["reservation_sql"][0]
limit = 1 / (1 / order_sql + 1 / reservation_sql) if order_sql and reservation_sql else 0
placed = dict(l.split() for l in open(placed_path) if l.strip())
invoiced = dict(l.split() for l in open(invoiced_path) if l.strip())
lags = sorted((float(invoiced[k]) - float(v)) * 1000 for k, v in placed.items() if k in invoiced)
missing = len(placed) - len(lags)
q = lambda p: lags[min(len(lags) - 1, int(p * len(lags)))] if lags else float("nan")

def row(label, key, of=None, target=None):
    rps, p50, p99, _ = median[key]
    rounds_ = " / ".join(f"{r[0]:.0f}" for r in by[key])
    ratio = ""
    if of:
        ratio = f"{rps / of:.0%}" + (f" ({'✓' if rps / of >= target else '✗'} ≥ {target:.0%})" if target else "")
    print(f"| {label} | {rps:.0f} | {p50 or '—'} | {p99 or '—'} | {rounds_} | {ratio} |")

print(f"\n3-line placements and reservations, {conns} connections, {rounds} alternating rounds of {dur}, median round\n")
print("| path | per second | p50 | p99 | rounds | of its least SQL |")
print("|---|---:|---:|---:|---|---:|")
row("least SQL: the order's transaction (pgbench, order database)", "order_sql")
row("least SQL: the reservation's transaction (pgbench, inventory database)", "reservation_sql")
print(f"| least SQL: both, one placement (1 / (1/order + 1/reservation)) | {limit:.0f} | | | | |")
row("reservation, REST (3 lines)", "reservation", reservation_sql)
row("**placement, REST (3 lines)**", "placement", limit, 0.5)
lag_ok = "✓" if q(0.99) < 1000 else "✗"
print(f"\nplacement → invoice over all {len(lags)} placements: p50 {q(0.5):.1f} ms, p99 {q(0.99):.1f} ms ({lag_ok} < 1 s), max {lags[-1] if lags else float('nan'):.1f} ms")
starts = [int(l) for l in open(starts_path) if l.strip()] + [float("inf")]
per_round = []
for n, (lo, hi) in enumerate(zip(starts, starts[1:]), 1):
    mine = sorted((float(invoiced[k]) - float(v)) * 1000 for k, v in placed.items()
                  if k in invoiced and lo < int(k) <= hi)
    if mine:
        per_round.append(f"round {n}: p50 {mine[len(mine) // 2]:.0f} ms, p99 {mine[min(len(mine) - 1, int(0.99 * len(mine)))]:.0f} ms")
print("  by round: " + "; ".join(per_round))
print(f"non-2xx answers: {errors}; orders without an invoice: {missing}; duplicate invoices: {dupes}; "
      f"rows whose held units disagree with the active reservations: {diff}")
if errors or missing or int(dupes) or int(diff) or failed_sql:
    sys.exit(f"failures (sql runs failed: {failed_sql}): the figures above do not count")
PY
