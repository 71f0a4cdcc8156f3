#!/usr/bin/env bash
# Product list throughput against two limits that do not move with our code, side by side in one
# run, rounds alternating, medians reported:
#   pgbench      the least SQL for the same page (bench/sql/product_page.sql, prepared)
#   DRF          the stack being replaced: Django REST Framework + graphene-django under gunicorn
#                (bench/reference/), on the same database and data
#   REST         GET /api/v1/product/products/?page_size=20 as a member (uncached), and publicly
#                (X-Project-ID, no token: the public cache)
#   GraphQL      the flat list (id name price sku status createdAt) on both stacks, and ours with
#                the category and tags selected
# Data: PRODUCTS products (2,000), 10 categories, 20 tags, 2 tags each. Needs PostgreSQL
# (ZV_DATABASE_URL), pgbench and wrk (installed from Debian if missing), python3 (the reference's
# venv is made from PyPI on first use).
#   bash bench/product.sh            DURATION=20s ROUNDS=5 CONNECTIONS=32 bash bench/product.sh
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
ROUNDS=${ROUNDS:-3}
CONNECTIONS=${CONNECTIONS:-16}
PRODUCTS=${PRODUCTS:-2000}
ADDR=127.0.0.1:18010
REF_ADDR=127.0.0.1:18011
DB_URL=${ZV_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
# Every client on the transport zv uses for a server on this machine (no TLS): pgbench and
# libpq clients would otherwise negotiate TLS with a server that offers it.
export PGSSLMODE=${PGSSLMODE:-disable}

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
command -v pgbench >/dev/null || { apt-get update -qq && apt-get install -y -qq postgresql-contrib >/dev/null; }
cargo build --release -q -p zv
bash bench/reference/serve.sh install
BIN=target/release/zv

RUN_ID=$(date +%s)$$
export ZV_DATABASE_PREFIX="bench${RUN_ID}_"
export ZV_DATA_DIR=$(mktemp -d)
export ZV_LOG_LEVEL=warn
export ZV_RATE_LIMIT__ENABLED=false
export ZV_DATABASE_MAX_CONNECTIONS=$CONNECTIONS
PASSWORD="Bench-pass-123"
PRODUCT_DB="${DB_URL%/*}/${ZV_DATABASE_PREFIX}zv_product_db"
WORK=$(mktemp -d)
export REF_PIDFILE="$WORK/reference.pid" REF_LOG="$WORK/reference.log"

cleanup() {
  restore_pg 2>/dev/null || true
  bash bench/reference/serve.sh stop 2>/dev/null || true
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
# pin it), both servers and the load generators share the other core(s). Otherwise pgbench would
# leave the database two cores while the HTTP rows split them with a server.
CORES=$(nproc)
PIN=()
PG_PIDS=$(pgrep -x postgres || pgrep -f 'postgres:' || true)
if command -v taskset >/dev/null && [ "$CORES" -ge 2 ]; then
  PIN=(taskset -c "1-$((CORES - 1))")
  for pid in $PG_PIDS; do taskset -a -cp 0 "$pid" >/dev/null 2>&1 || true; done
fi
restore_pg() { for pid in $(pgrep -x postgres || true); do taskset -a -cp "0-$((CORES - 1))" "$pid" >/dev/null 2>&1 || true; done; }
ZV_LISTEN=$ADDR "${PIN[@]}" $BIN up 2>/dev/null & PIDS+=($!)
for _ in $(seq 100); do curl -sf "http://$ADDR/health/" >/dev/null && break; sleep 0.2; done

json() { python3 -c "import sys,json;print(json.load(sys.stdin)$1)"; }
TOKEN=$(curl -sf -X POST "http://$ADDR/api/v1/auth/auth/token/" -H 'content-type: application/json' \
  -d "{\"username\":\"bench\",\"password\":\"$PASSWORD\"}" | json '["access"]')
PROJECT=$(curl -sf -X POST "http://$ADDR/api/v1/project/projects/" -H "Authorization: Bearer $TOKEN" \
  -H 'content-type: application/json' -d '{"title":"Bench"}' | json '["id"]')
TOKEN=$(curl -sf -X POST "http://$ADDR/api/v1/auth/auth/token/change_project/" -H "Authorization: Bearer $TOKEN" \
  -H 'content-type: application/json' -d "{\"project_id\":$PROJECT}" | json '["access"]')
# One product through the API (so every table has its first row), then the rest in bulk with
# the columns the API writes: 10 categories, 20 tags, 2 tags per product.
curl -sf -X POST "http://$ADDR/api/v1/product/products/" -H "Authorization: Bearer $TOKEN" \
  -H 'content-type: application/json' -d '{"name":"Seed","price":"1","tags":["seed"]}' >/dev/null
psql "$PRODUCT_DB" -qc "
  INSERT INTO categories (project_id, name_en, name_ar, slug, created_by, updated_by)
  SELECT $PROJECT, 'Category ' || n, 'فئة ' || n, 'category-' || n, 1, 1 FROM generate_series(1, 10) AS n;
  INSERT INTO tags (project_id, name, slug, created_by, updated_by)
  SELECT $PROJECT, 'tag-' || n, 'tag-' || n, 1, 1 FROM generate_series(1, 20) AS n;
  INSERT INTO products (project_id, name_en, name_ar, description_en, slug, sku, status, price, cost_price, category, created_by, updated_by)
  SELECT $PROJECT, 'Product ' || n, 'منتج ' || n, 'A product for the benchmark', 'product-' || n, 'SKU-' || n,
         'active', (n % 500) + 0.99, (n % 500) / 2,
         (SELECT min(id) FROM categories WHERE project_id = $PROJECT) + n % 10, 1, 1
  FROM generate_series(2, $PRODUCTS) AS n;
  INSERT INTO product_tags (product_id, tag_id)
  SELECT p.id, t.first + (p.id + k) % 20
  FROM products p, generate_series(0, 1) AS k,
       (SELECT min(id) AS first FROM tags WHERE project_id = $PROJECT AND name LIKE 'tag-%') t
  WHERE p.project_id = $PROJECT AND p.name_en <> 'Seed' ON CONFLICT DO NOTHING;" >/dev/null
psql "$PRODUCT_DB" -qc "VACUUM ANALYZE" >/dev/null

REF_DATABASE_URL="$PRODUCT_DB" REF_JWKS_URL="http://$ADDR/.well-known/jwks.json" REF_LISTEN=$REF_ADDR \
  REF_PIN="${PIN[*]}" bash bench/reference/serve.sh start

FLAT='{ products(limit: 20) { totalCount edges { id name price sku status createdAt } } }'
RICH='{ products(limit: 20) { totalCount edges { id name price sku status createdAt category { id name } tags { name } } } }'
gql_script() { # FILE QUERY
  python3 - "$1" "$2" "$TOKEN" <<'PY'
import json, sys
path, query, token = sys.argv[1:]
body = json.dumps({"query": query}).replace("\\", "\\\\").replace("'", "\\'")
open(path, "w").write(f"""wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {token}"
wrk.body = '{body}'
""")
PY
}
gql_script "$WORK/flat.lua" "$FLAT"
gql_script "$WORK/rich.lua" "$RICH"

# Both stacks must give the same page before anything is measured (and the GraphQL rows
# measure answers, not errors: resolver errors still answer 200).
python3 - "$ADDR" "$REF_ADDR" "$TOKEN" "$PROJECT" "$FLAT" "$RICH" <<'PY'
import json, sys, urllib.request
ours, ref, token, project, flat, rich = sys.argv[1:]
def call(addr, path, body=None, auth=True):
    headers = {"Content-Type": "application/json"}
    if auth:
        headers["Authorization"] = f"Bearer {token}"
    else:
        headers["X-Project-ID"] = project
    data = json.dumps({"query": body}).encode() if body else None
    with urllib.request.urlopen(urllib.request.Request(f"http://{addr}{path}", data, headers)) as r:
        return json.load(r)
page = "/api/v1/product/products/?page_size=20"
a, b = call(ours, page), call(ref, page)
assert a["count"] == b["count"] and len(a["results"]) == 20, (a["count"], b["count"])
assert [r["id"] for r in a["results"]] == [r["id"] for r in b["results"]], "pages differ"
for x, y in zip(a["results"], b["results"]):
    assert x["category"]["name"] == y["category"]["name"] and sorted(x["tags"]) == sorted(y["tags"]), (x, y)
assert call(ours, page, auth=False)["count"] == a["count"]
for query in (flat, rich):
    g = call(ours, "/graphql/product", query)
    assert not g.get("errors") and len(g["data"]["products"]["edges"]) == 20, g
r = call(ref, "/graphql/product", flat)
ids = lambda body: [int(e["id"]) for e in body["data"]["products"]["edges"]]
assert not r.get("errors") and ids(r) == ids(g), r
PY

wrk_row() { # NAME wrk-arguments…
  local name=$1; shift
  "${PIN[@]}" wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency "$@" > "$WORK/wrk.txt"
  python3 - "$WORK/wrk.txt" "$name" >> "$WORK/rows" <<'PY'
import re, sys
text, name = open(sys.argv[1]).read(), sys.argv[2]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
p50 = re.search(r"50%\s+([\d.]+\w+)", text).group(1)
p99 = re.search(r"99%\s+([\d.]+\w+)", text).group(1)
errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
print(f"{name}\t{rps:.0f}\t{p50}\t{p99}\t{errors.group(1) if errors else 0}")
PY
}
pgbench_row() {
  local tps
  tps=$("${PIN[@]}" pgbench -n -M prepared -c "$CONNECTIONS" -j 1 -T "${DURATION%s}" -D project="$PROJECT" \
    -f bench/sql/product_page.sql "$PRODUCT_DB" 2>/dev/null | python3 -c 'import re,sys;print(round(float(re.search(r"tps = ([\d.]+)", sys.stdin.read()).group(1))))')
  printf 'sql\t%s\t\t\t0\n' "$tps" >> "$WORK/rows"
}

PAGE="api/v1/product/products/?page_size=20"
# Warm every path once (and fill the public cache).
curl -sf "http://$ADDR/$PAGE" -H "Authorization: Bearer $TOKEN" >/dev/null
curl -sf "http://$ADDR/$PAGE" -H "X-Project-ID: $PROJECT" >/dev/null
curl -sf "http://$REF_ADDR/$PAGE" -H "Authorization: Bearer $TOKEN" >/dev/null
for round in $(seq "$ROUNDS"); do
  echo "round $round of $ROUNDS" >&2
  pgbench_row
  wrk_row rest -H "Authorization: Bearer $TOKEN" "http://$ADDR/$PAGE"
  wrk_row drf -H "Authorization: Bearer $TOKEN" "http://$REF_ADDR/$PAGE"
  wrk_row cached -H "X-Project-ID: $PROJECT" "http://$ADDR/$PAGE"
  wrk_row gql -s "$WORK/flat.lua" "http://$ADDR/graphql/product"
  wrk_row graphene -s "$WORK/flat.lua" "http://$REF_ADDR/graphql/product"
  wrk_row gql_rich -s "$WORK/rich.lua" "http://$ADDR/graphql/product"
done

python3 - "$WORK/rows" "$PRODUCTS" "$CONNECTIONS" "$DURATION" "$ROUNDS" <<'PY'
import statistics, sys
path, n, conns, dur, rounds = sys.argv[1:]
rows = {}
for line in open(path):
    name, rps, p50, p99, errors = line.rstrip("\n").split("\t")
    rows.setdefault(name, []).append((float(rps), p50, p99, int(errors)))
def median(name):
    runs = sorted(rows[name])
    return runs[len(runs) // 2]
m = {name: median(name) for name in rows}
rps = {name: m[name][0] for name in m}
print(f"\n{n} products, 10 categories, 20 tags (2 each); page of 20 with the count; "
      f"{conns} connections; medians of {rounds} alternating rounds of {dur}\n")
print("| path | pages/s | p50 | p99 | non-2xx (all rounds) |")
print("|---|---:|---:|---:|---:|")
labels = [
    ("sql", "pgbench, least SQL for the page (bench/sql/product_page.sql)"),
    ("drf", "Django REST Framework reference, member"),
    ("rest", "ZoneVast REST, member (uncached)"),
    ("cached", "ZoneVast REST, public (cached)"),
    ("graphene", "Graphene reference, flat list"),
    ("gql", "ZoneVast GraphQL, flat list"),
    ("gql_rich", "ZoneVast GraphQL, with category and tags"),
]
for key, label in labels:
    r, p50, p99, _ = m[key]
    errors = sum(e for *_, e in rows[key])
    print(f"| {label} | {r:.0f} | {p50} | {p99} | {errors if key != 'sql' else ''} |")
ratios = [
    ("REST uncached / DRF", rps["rest"] / rps["drf"], 10, "x"),
    ("REST uncached / least SQL", rps["rest"] / rps["sql"], 0.70, "%"),
    ("REST cached / DRF", rps["cached"] / rps["drf"], 60, "x"),
    ("GraphQL flat / Graphene", rps["gql"] / rps["graphene"], 10, "x"),
    ("GraphQL with relations / REST uncached", rps["gql_rich"] / rps["rest"], 0.80, "%"),
]
print("\n| ratio | measured | target |")
print("|---|---:|---:|")
for name, value, target, unit in ratios:
    fmt = (lambda v: f"{v:.0%}") if unit == "%" else (lambda v: f"{v:.1f}×")
    mark = "" if value >= target else " (below)"
    print(f"| {name} | {fmt(value)}{mark} | ≥ {fmt(target)} |")
if any(e for runs in rows.values() for *_, e in runs):
    sys.exit("some requests failed: the figures above do not count")
PY
