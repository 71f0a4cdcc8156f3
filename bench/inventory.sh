#!/usr/bin/env bash
# Reservations per second through the gateway (POST /api/v1/inventory/reservations/), side by
# side in one run:
#   single line, hot      every request holds 1 unit of one of 5 SKUs (rows serialise on locks)
#   single line, spread   1 unit of one of 1000 SKUs
#   5 lines, hot          the same 5 SKUs in every request, in shuffled order (lock ordering)
#   5 lines, spread       5 distinct SKUs of 1000
# Each reservation reads its candidate rows without locks, then writes the header, lines,
# allocations, held units and outbox events (relayed in the background) in one statement; when
# a row changed in between, it is made again in one transaction under row locks.
# Needs PostgreSQL (ZV_DATABASE_URL) and wrk (installed from Debian if missing).
#   bash bench/inventory.sh           DURATION=10s ROUNDS=5 CONNECTIONS=32 bash bench/inventory.sh
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-5s}
ROUNDS=${ROUNDS:-3}
CONNECTIONS=${CONNECTIONS:-16}
SKUS=1000
HOT=5
ADDR=127.0.0.1:18011
DB_URL=${ZV_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}

source bench/common.sh

# wrk scripts: the product ids are baked in; each request draws its lines.
lua() { # $1 = lines per request, $2 = how many SKUs to draw from
  local ids
  ids=$(head -n "$2" "$WORK/ids" | paste -sd, -)
  cat <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $TOKEN"
local ids = {$ids}
request = function()
  local chosen, used = {}, {}
  while #chosen < $1 do
    local id = ids[math.random(#ids)]
    if not used[id] then used[id] = true; chosen[#chosen + 1] = '{"product_id":' .. id .. ',"quantity":1}' end
  end
  return wrk.format(nil, nil, nil, '{"items":[' .. table.concat(chosen, ",") .. '],"expires_at":null}')
end
local shown = 0
response = function(status, headers, body)
  if status ~= 201 and shown < 3 then
    shown = shown + 1
    io.stderr:write("non-201: " .. status .. " " .. body .. "\n")
  end
end
LUA
}
lua 1 "$HOT" > "$WORK/one_hot.lua"
lua 1 "$SKUS" > "$WORK/one_spread.lua"
lua 5 "$HOT" > "$WORK/five_hot.lua"
lua 5 "$SKUS" > "$WORK/five_spread.lua"

# Check that a request of each kind reserves (201), then warm up.
for s in one_hot five_spread; do
  body=$(python3 - "$WORK/ids" "$s" <<'PY'
import json, sys
ids = [int(l) for l in open(sys.argv[1]) if l.strip()]
n = 5 if sys.argv[2].startswith("five") else 1
print(json.dumps({"items": [{"product_id": i, "quantity": 1} for i in ids[:n]]}))
PY
)
  code=$(curl -s -o "$WORK/check.json" -w '%{http_code}' -X POST "http://$ADDR/api/v1/inventory/reservations/" \
    -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' --data "$body")
  [ "$code" = 201 ] || { echo "reservation check failed ($code): $(cat "$WORK/check.json")"; exit 1; }
done
wrk -t1 -c"$CONNECTIONS" -d2s -s "$WORK/one_spread.lua" "http://$ADDR/api/v1/inventory/reservations/" >/dev/null

wrk_rps() {
  wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency -s "$1" "http://$ADDR/api/v1/inventory/reservations/" > "$WORK/wrk.txt"
  python3 - "$WORK/wrk.txt" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
p50 = re.search(r"50%\s+([\d.]+\w+)", text).group(1)
p99 = re.search(r"99%\s+([\d.]+\w+)", text).group(1)
errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
print(f"{rps:.0f} {p50} {p99} {errors.group(1) if errors else 0}")
PY
}
# Rounds alternate the four kinds, so that drift on a shared machine hits them alike; the table
# shows each kind's median round.
: > "$WORK/rounds"
for round in $(seq "$ROUNDS"); do
  for kind in one_hot one_spread five_hot five_spread; do
    echo "$kind $(wrk_rps "$WORK/$kind.lua")" >> "$WORK/rounds"
  done
done

# The levels must still add up after the run.
DIFF=$(psql -At "${DB_URL%/*}/${ZV_DATABASE_PREFIX}zv_inventory_db" -c "
  SELECT count(*) FROM stock_items s WHERE s.quantity <> COALESCE((SELECT sum(m.quantity) FROM movements m WHERE m.inventory_id = s.id), 0)
     OR s.reserved_quantity <> COALESCE((SELECT sum(a.quantity) FROM reservation_allocations a
          JOIN reservation_items i ON i.id = a.item_id JOIN reservations r ON r.id = i.reservation_id
          WHERE a.inventory_id = s.id AND r.status = 'active'), 0)")

python3 - "$WORK/rounds" "$CONNECTIONS" "$DURATION" "$ROUNDS" "$DIFF" <<'PY'
import statistics, sys
path, conns, dur, rounds, diff = sys.argv[1:]
by_kind = {}
for line in open(path):
    kind, rps, p50, p99, err = line.split()
    by_kind.setdefault(kind, []).append((float(rps), p50, p99, int(err)))
names = [("one_hot", "1 line, 5 hot SKUs"), ("one_spread", "1 line, 1000 SKUs"),
         ("five_hot", "5 lines, the same 5 hot SKUs (shuffled)"), ("five_spread", "5 lines of 1000 SKUs")]
median = {k: sorted(v, key=lambda r: r[0])[len(v) // 2] for k, v in by_kind.items()}
errors = sum(r[3] for v in by_kind.values() for r in v)
print(f"\nreservations through the gateway, {conns} connections, {rounds} alternating rounds of {dur}, median round\n")
print("| reservation | reservations/s | p50 | p99 | rounds (res/s) | vs 1 line spread |")
print("|---|---:|---:|---:|---|---:|")
base = median["one_spread"][0]
for key, name in names:
    rps, p50, p99, _ = median[key]
    spread = " / ".join(f"{r[0]:.0f}" for r in by_kind[key])
    print(f"| {name} | {rps:.0f} | {p50} | {p99} | {spread} | {rps / base:.0%} |")
print(f"\nnon-2xx answers: {errors}; rows whose level or held units disagree with the ledger and reservations: {diff}")
if errors or int(diff):
    sys.exit("some requests failed or the levels disagree: the figures above do not count")
PY
