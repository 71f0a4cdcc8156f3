# Shared by bench/inventory.sh and bench/orders.sh (sourced, not run): builds `zv`, starts
# `zv up` on $ADDR with its own databases (dropped on exit), logs in a member of a new project
# ($TOKEN, $PROJECT) and creates $SKUS products with 1 000 000 units each received through the
# API ($WORK/ids holds their ids). Needs DB_URL, ADDR, SKUS and CONNECTIONS set. The server's
# log is $WORK/zv.log (ZV_LOG_LEVEL, warn unless given). With PIN_PG=1 (a script that compares
# with pgbench), PostgreSQL is pinned to core 0 and the server and load generators to the other
# core(s) (prefix their commands with "${PIN[@]}"), so the database gets the same CPU in every
# row; the pinning is undone on exit.
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
cargo build --release -q -p zv ${ZV_FEATURES:+--features "$ZV_FEATURES"}
BIN=target/release/zv

RUN_ID=$(date +%s)$$
# Every client on the transport zv uses for a server on this machine (no TLS): pgbench and
# libpq clients would otherwise negotiate TLS with a server that offers it.
export PGSSLMODE=${PGSSLMODE:-disable}
export ZV_DATABASE_PREFIX="bench${RUN_ID}_"
export ZV_DATA_DIR=$(mktemp -d)
export ZV_LOG_LEVEL=${ZV_LOG_LEVEL:-warn}
export ZV_RATE_LIMIT__ENABLED=false
export ZV_DATABASE_MAX_CONNECTIONS=$CONNECTIONS
PASSWORD="Bench-pass-123"
PRODUCT_DB="${ZV_DATABASE_PREFIX}zv_product_db"
WORK=$(mktemp -d)

CORES=$(nproc)
PIN=()
restore_pg() { for pid in $(pgrep -x postgres || true); do taskset -a -cp "0-$((CORES - 1))" "$pid" >/dev/null 2>&1 || true; done; }
if [ "${PIN_PG:-0}" = 1 ] && command -v taskset >/dev/null && [ "$CORES" -ge 2 ]; then
  PIN=(taskset -c "1-$((CORES - 1))")
  for pid in $(pgrep -x postgres || true); do taskset -a -cp 0 "$pid" >/dev/null 2>&1 || true; done
fi

cleanup() {
  [ ${#PIN[@]} -eq 0 ] || restore_pg
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
ZV_LISTEN=$ADDR "${PIN[@]}" $BIN up > "$WORK/zv.log" 2>&1 & PIDS+=($!)
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

# Fresh statistics after the bulk load, as autovacuum would give a running shop.
for service in product inventory; do
  psql "${DB_URL%/*}/${ZV_DATABASE_PREFIX}zv_${service}_db" -qc "VACUUM ANALYZE" >/dev/null
done
