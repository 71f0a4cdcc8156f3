#!/usr/bin/env bash
# Gateway overhead, side by side in one run: the same handlers reached through the gateway
# (`zv up`) and directly (`zv serve auth`: the service with only its own auth check in front).
# Needs PostgreSQL (ZV_DATABASE_URL) and wrk (installed from Debian if missing).
#   bash bench/gateway.sh            DURATION=20s CONNECTIONS=64 bash bench/gateway.sh
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-32}
GATEWAY=127.0.0.1:18000
DIRECT=127.0.0.1:18101

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
cargo build --release -q -p zv
BIN=target/release/zv

RUN_ID=$(date +%s)$$
export ZV_DATABASE_PREFIX="bench${RUN_ID}_"
export ZV_DATA_DIR=$(mktemp -d)
export ZV_LOG_LEVEL=info
# Limits stay on (their cost is part of the gateway) but high enough never to reject.
export ZV_RATE_LIMIT__USER_PER_MINUTE=1000000000
export ZV_RATE_LIMIT__ANONYMOUS_PER_MINUTE=1000000000
PASSWORD="Bench-pass-123"

cleanup() {
  kill "${PIDS[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
  for service in auth project product inventory order billing; do
    psql "${ZV_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}" -qc \
      "DROP DATABASE IF EXISTS \"${ZV_DATABASE_PREFIX}zv_${service}_db\" WITH (FORCE)" >/dev/null 2>&1 || true
  done
  rm -rf "$ZV_DATA_DIR"
}
PIDS=()
trap cleanup EXIT

$BIN user create --username bench --email bench@example.com --password "$PASSWORD" >/dev/null
# Servers on the last core, the load generator on the first, so they do not steal each other's
# time (on a 2-core machine both servers share one core; only one is loaded at a time).
CORES=$(nproc)
SERVER_CPU=$((CORES - 1))
PIN_SERVER=(); PIN_LOAD=()
if command -v taskset >/dev/null && [ "$CORES" -ge 2 ]; then
  PIN_SERVER=(taskset -c "$SERVER_CPU"); PIN_LOAD=(taskset -c 0)
fi
ZV_LISTEN=$GATEWAY "${PIN_SERVER[@]}" $BIN up 2>/dev/null & PIDS+=($!)
"${PIN_SERVER[@]}" $BIN serve auth --listen $DIRECT 2>/dev/null & PIDS+=($!)
for addr in $GATEWAY $DIRECT; do
  for _ in $(seq 50); do curl -sf "http://$addr/api/v1/auth/health/" >/dev/null && break; sleep 0.2; done
done
TOKEN=$(curl -sf -X POST "http://$GATEWAY/api/v1/auth/auth/token/" -H 'content-type: application/json' \
  -d "{\"username\":\"bench\",\"password\":\"$PASSWORD\"}" | python3 -c 'import sys,json;print(json.load(sys.stdin)["access"])')

# wrk prints "Requests/sec: N" and, with --latency, "50% Xms" / "99% Yms".
measure() {
  local url=$1; shift
  "${PIN_LOAD[@]}" wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency "$@" "$url" > /tmp/zv-wrk.txt
  python3 - /tmp/zv-wrk.txt <<'PY'
import re, sys
text = open(sys.argv[1]).read()
def ms(v):
    n, unit = re.match(r"([\d.]+)(\w+)", v).groups()
    return float(n) * {"us": 0.001, "ms": 1, "s": 1000}[unit]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
p50 = ms(re.search(r"^\s+50%\s+(\S+)", text, re.M).group(1))
p99 = ms(re.search(r"^\s+99%\s+(\S+)", text, re.M).group(1))
errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
print(f"{rps:.0f} {p50:.3f} {p99:.3f} {errors.group(1) if errors else 0}")
PY
}

AUTH=(-H "Authorization: Bearer $TOKEN")
ROUNDS=${ROUNDS:-5}
# Each pair runs ROUNDS times, alternating gateway and direct; the table shows medians.
pair() {
  local label=$1 gw_url=$2 direct_url=$3; shift 3
  local gw=() direct=()
  for _ in $(seq "$ROUNDS"); do
    gw+=("$(measure "$gw_url" "$@")")
    direct+=("$(measure "$direct_url" "$@")")
  done
  python3 - "$label" "${gw_url#http://}" "${direct_url#http://}" "${gw[@]}" -- "${direct[@]}" <<'PY'
import statistics, sys
label, gw_path, direct_path, *rest = sys.argv[1:]
cut = rest.index("--")
def med(rows):
    cols = list(zip(*[map(float, r.split()) for r in rows]))
    return [statistics.median(c) for c in cols]
g, d = med(rest[:cut]), med(rest[cut + 1:])
print(f"| {label} | gateway `{gw_path}` | {g[0]:.0f} | {g[1]:.3f} | {g[2]:.3f} | {g[3]:.0f} |")
print(f"| {label} | direct `{direct_path}` | {d[0]:.0f} | {d[1]:.3f} | {d[2]:.3f} | {d[3]:.0f} |")
print(f"| {label} | **gateway / direct** | **{g[0]/d[0]:.1%}** | | | |")
PY
}

printf '| endpoint | via | req/s | p50 ms | p99 ms | non-2xx |\n|---|---|---|---|---|---|\n'
pair "GET auth/user (authenticated)" "http://$GATEWAY/api/v1/auth/auth/user/" "http://$DIRECT/api/v1/auth/auth/user/" "${AUTH[@]}"
pair "GET health" "http://$GATEWAY/api/v1/auth/health/" "http://$DIRECT/api/v1/auth/health/"
read -r rps p50 p99 errs < <(measure "http://$GATEWAY/health/")
printf '| GET /health/ (gateway itself) | gateway | %s | %s | %s | %s |\n' "$rps" "$p50" "$p99" "$errs"
echo
PINNING="servers on CPU $SERVER_CPU, wrk on CPU 0"
[ ${#PIN_LOAD[@]} -gt 0 ] || PINNING="not pinned"
echo "wrk -t1 -c$CONNECTIONS -d$DURATION, $ROUNDS alternating rounds, medians; $PINNING."
