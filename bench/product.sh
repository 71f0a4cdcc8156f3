#!/usr/bin/env bash
# Product list throughput, side by side in one run:
#   pgbench       the SQL a member's first page runs (count + rows), prepared: the physical limit
#   REST          GET /api/v1/product/products/?page_size=20 as a member (uncached)
#   REST cached   the same page read publicly (X-Project-ID, no token): the public cache
#   GraphQL       products(limit: 20) { totalCount edges { … } } as a member (uncached)
# Needs PostgreSQL (ZV_DATABASE_URL), pgbench and wrk (installed from Debian if missing).
#   bash bench/product.sh            DURATION=20s CONNECTIONS=32 PRODUCTS=2000 bash bench/product.sh
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-16}
PRODUCTS=${PRODUCTS:-1000}
ADDR=127.0.0.1:18010
DB_URL=${ZV_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
command -v pgbench >/dev/null || { apt-get update -qq && apt-get install -y -qq postgresql-contrib >/dev/null; }
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
  restore_pg 2>/dev/null || true
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
# The database gets the same CPU in every row: PostgreSQL is pinned to core 0 (when this user may
# pin it), the server and the load generators share the other core(s). Otherwise pgbench would
# leave the database two cores while the REST rows split them with the server.
CORES=$(nproc)
PIN_SERVER=(); PIN_LOAD=()
PG_PIDS=$(pgrep -x postgres || pgrep -f 'postgres:' || true)
if command -v taskset >/dev/null && [ "$CORES" -ge 2 ]; then
  OTHERS="1-$((CORES - 1))"
  PIN_SERVER=(taskset -c "$OTHERS"); PIN_LOAD=(taskset -c "$OTHERS")
  for pid in $PG_PIDS; do taskset -a -cp 0 "$pid" >/dev/null 2>&1 || true; done
fi
restore_pg() { for pid in $(pgrep -x postgres || true); do taskset -a -cp "0-$((CORES - 1))" "$pid" >/dev/null 2>&1 || true; done; }
ZV_LISTEN=$ADDR "${PIN_SERVER[@]}" $BIN up 2>/dev/null & PIDS+=($!)
for _ in $(seq 100); do curl -sf "http://$ADDR/health/" >/dev/null && break; sleep 0.2; done

json() { python3 -c "import sys,json;print(json.load(sys.stdin)$1)"; }
TOKEN=$(curl -sf -X POST "http://$ADDR/api/v1/auth/auth/token/" -H 'content-type: application/json' \
  -d "{\"username\":\"bench\",\"password\":\"$PASSWORD\"}" | json '["access"]')
PROJECT=$(curl -sf -X POST "http://$ADDR/api/v1/project/projects/" -H "Authorization: Bearer $TOKEN" \
  -H 'content-type: application/json' -d '{"title":"Bench"}' | json '["id"]')
TOKEN=$(curl -sf -X POST "http://$ADDR/api/v1/auth/auth/token/change_project/" -H "Authorization: Bearer $TOKEN" \
  -H 'content-type: application/json' -d "{\"project_id\":$PROJECT}" | json '["access"]')
# A category and a tag through the API, then the products in bulk (same columns the API writes).
CATEGORY=$(curl -sf -X POST "http://$ADDR/api/v1/product/products/categories/" -H "Authorization: Bearer $TOKEN" \
  -H 'content-type: application/json' -d '{"name":"Phones","name_ar":"هواتف"}' | json '["id"]')
curl -sf -X POST "http://$ADDR/api/v1/product/products/" -H "Authorization: Bearer $TOKEN" \
  -H 'content-type: application/json' -d "{\"name\":\"Seed\",\"price\":\"1\",\"tags\":[\"sale\"],\"category\":$CATEGORY}" >/dev/null
psql "${DB_URL%/*}/$PRODUCT_DB" -qc "
  INSERT INTO products (project_id, name_en, name_ar, description_en, slug, sku, status, price, cost_price, category, created_by, updated_by)
  SELECT $PROJECT, 'Product ' || n, 'منتج ' || n, 'A product for the benchmark', 'product-' || n, 'SKU-' || n,
         'active', (n % 500) + 0.99, (n % 500) / 2, $CATEGORY, 1, 1
  FROM generate_series(1, $PRODUCTS) AS n;
  INSERT INTO product_tags (product_id, tag_id)
  SELECT p.id, (SELECT id FROM tags LIMIT 1) FROM products p WHERE p.id % 3 = 0 ON CONFLICT DO NOTHING;
  ANALYZE;" >/dev/null

$BIN product-list-sql --project "$PROJECT" --page-size 20 > "$WORK/page.sql"
GQL_BODY='{"query":"{ products(limit: 20) { totalCount edges { id title price finalPrice sku status category { id name } tags { name } stockStatus createdAt } } }"}'
cat > "$WORK/graphql.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $TOKEN"
wrk.body = '$GQL_BODY'
LUA
# The GraphQL row measures answers, not errors (resolver errors still answer 200).
curl -sf "http://$ADDR/graphql/product" -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
  --data "$GQL_BODY" | python3 -c 'import json, sys
body = json.load(sys.stdin)
assert not body.get("errors") and len(body["data"]["products"]["edges"]) == 20, body'

# Warm every path once (and fill the public cache).
curl -sf "http://$ADDR/api/v1/product/products/?page_size=20" -H "Authorization: Bearer $TOKEN" >/dev/null
curl -sf "http://$ADDR/api/v1/product/products/?page_size=20" -H "X-Project-ID: $PROJECT" >/dev/null

wrk_rps() {
  "${PIN_LOAD[@]}" wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency "$@" > "$WORK/wrk.txt"
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

SECONDS_ARG=${DURATION%s}
PG=$("${PIN_LOAD[@]}" pgbench -n -M prepared -c "$CONNECTIONS" -j 1 -T "$SECONDS_ARG" -f "$WORK/page.sql" \
  "${DB_URL%/*}/$PRODUCT_DB" 2>/dev/null | python3 -c 'import re,sys;print(round(float(re.search(r"tps = ([\d.]+)", sys.stdin.read()).group(1))))')
read -r REST REST50 REST99 REST_ERR < <(wrk_rps -H "Authorization: Bearer $TOKEN" "http://$ADDR/api/v1/product/products/?page_size=20")
read -r CACHED C50 C99 C_ERR < <(wrk_rps -H "X-Project-ID: $PROJECT" "http://$ADDR/api/v1/product/products/?page_size=20")
read -r GQL G50 G99 G_ERR < <(wrk_rps -s "$WORK/graphql.lua" "http://$ADDR/graphql/product")

python3 - "$PG" "$REST" "$REST50" "$REST99" "$REST_ERR" "$CACHED" "$C50" "$C99" "$C_ERR" "$GQL" "$G50" "$G99" "$G_ERR" "$PRODUCTS" "$CONNECTIONS" "$DURATION" <<'PY'
import sys
pg, rest, r50, r99, rerr, cached, c50, c99, cerr, gql, g50, g99, gerr, n, conns, dur = sys.argv[1:]
pg, rest, cached, gql = float(pg), float(rest), float(cached), float(gql)
print(f"\n{n} products, page of 20 with count, {conns} connections, {dur} each\n")
print("| path | pages/s | p50 | p99 | non-2xx | vs pgbench |")
print("|---|---:|---:|---:|---:|---:|")
print(f"| pgbench, same SQL (count + page) | {pg:.0f} | | | | 100% |")
print(f"| REST, member (uncached) | {rest:.0f} | {r50} | {r99} | {rerr} | {rest / pg:.0%} |")
print(f"| GraphQL, member (uncached) | {gql:.0f} | {g50} | {g99} | {gerr} | {gql / pg:.0%} |")
print(f"| REST, public (cached) | {cached:.0f} | {c50} | {c99} | {cerr} | {cached / pg:.0%} |")
print(f"\ncached / uncached REST: {cached / rest:.1f}x")
if int(rerr) or int(cerr) or int(gerr):
    sys.exit("some requests failed: the figures above do not count")
PY
