#!/usr/bin/env bash
# Resident memory of `zv up`: idle, after a mixed load, and after the same time at rest, so a
# process that keeps what a load made it allocate shows it. The load mixes member and public
# product lists, GraphQL lists, order placements, stock reads, and hostile requests (nested
# GraphQL documents, fragment bombs, NUL characters, oversized bodies) that must be refused.
# The load and the rest run ROUNDS times (default 2): a process that grows with the traffic it
# serves shows a higher figure after each round; one that reaches a plateau shows the same.
# Prints one line: allocator, idle, after each load and each rest (MiB), requests per round.
#   bash bench/memory.sh                      LOAD=60s REST=60 ROUNDS=3 bash bench/memory.sh
#   ZV_FEATURES=alloc-mimalloc bash bench/memory.sh   (another allocator, see crates/zv)
set -euo pipefail
cd "$(dirname "$0")/.."

LOAD=${LOAD:-300s}
REST=${REST:-300}
ROUNDS=${ROUNDS:-2}
CONNECTIONS=${CONNECTIONS:-16}
SKUS=200
ADDR=127.0.0.1:18014
DB_URL=${ZV_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}

source bench/common.sh

ZV_PID=${PIDS[0]}
rss() { awk '/^VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$ZV_PID/status"; }

IDS=$(paste -sd, - < "$WORK/ids")
DEEP=$(python3 -c 'print("[" * 3000 + "1" + "]" * 3000)')
cat > "$WORK/mixed.lua" <<LUA
local token = "Bearer $TOKEN"
local project = "$PROJECT"
local ids = {$IDS}
local bomb = "query { ...F0 }"
for i = 0, 19 do bomb = bomb .. " fragment F" .. i .. " on Query { __typename ...F" .. (i + 1) .. " ...F" .. (i + 1) .. " }" end
bomb = bomb .. " fragment F20 on Query { __typename }"
local member = {["Authorization"] = token, ["Content-Type"] = "application/json"}
local public = {["X-Project-ID"] = project, ["Content-Type"] = "application/json"}
local big = string.rep("x", 3 * 1024 * 1024)
local n = 0
request = function()
  n = n + 1
  local k = n % 10
  if k == 0 then return wrk.format("GET", "/api/v1/product/products/?page=" .. (n % 10 + 1) .. "&page_size=20", member)
  elseif k == 1 then return wrk.format("GET", "/api/v1/product/products/?page_size=20&search=product", public)
  elseif k == 2 then return wrk.format("POST", "/graphql/product", member, '{"query":"{ products(limit: 20) { id name price sku status createdAt } }"}')
  elseif k == 3 then
    local id = ids[math.random(#ids)]
    return wrk.format("POST", "/api/v1/order/orders/", member, '{"items":[{"product_id":' .. id .. ',"quantity":1}]}')
  elseif k == 4 then return wrk.format("GET", "/api/v1/inventory/stock/?page_size=50", member)
  elseif k == 5 then return wrk.format("POST", "/graphql/product", public, '{"query":"{ __type(name: $DEEP) { name } }"}')
  elseif k == 6 then return wrk.format("POST", "/graphql/order", public, '{"query":"' .. bomb .. '"}')
  elseif k == 7 then return wrk.format("POST", "/api/v1/product/products/", member, '{"name":"a\\\\u0000b","price":"1.00"}')
  elseif k == 8 then return wrk.format("GET", "/api/v1/product/products/?search=a%00b", member)
  else return wrk.format("POST", "/graphql/billing", public, '{"query":"{ __typename }","pad":"' .. big .. '"}')
  end
end
local bad = 0
response = function(status, headers, body)
  if status >= 500 and bad < 3 then
    bad = bad + 1
    io.stderr:write("server error: " .. status .. " " .. body:sub(1, 200) .. "\\n")
  end
end
LUA

sleep 5
LINE="allocator=${ZV_FEATURES:-system} idle=$(rss)MiB"
for round in $(seq "$ROUNDS"); do
  wrk -t2 -c"$CONNECTIONS" -d"$LOAD" -s "$WORK/mixed.lua" "http://$ADDR" > "$WORK/wrk.txt"
  LINE="$LINE load$round=$(rss)MiB"
  sleep "$REST"
  LINE="$LINE rest$round=$(rss)MiB requests$round=$(awk '/requests in/ {print $1}' "$WORK/wrk.txt")"
  curl -sf "http://$ADDR/health/" >/dev/null || { echo "zv up did not survive the load"; exit 1; }
done
echo "$LINE load=${LOAD} rest=${REST}s"
