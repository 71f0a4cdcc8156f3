#!/usr/bin/env bash
# Local S3-compatible server for the object-storage tests: s3s-fs (crates.io, Nugine/s3s), a
# file-system backed S3 server with SigV4 auth, presigned URLs and POST-policy checking.
#   bash scripts/s3-server.sh          -> install only (unless ZV_TEST_S3_START=1)
#   bash scripts/s3-server.sh start    -> install, then start on 127.0.0.1:${S3_PORT:-9000}
# Client settings: endpoint http://127.0.0.1:$S3_PORT, key zvtest / zvtestsecret, any region
# (us-east-1), path-style requests, allow HTTP.
set -euo pipefail

# Pinned: 0.15+ needs rustc >= 1.96; 0.14.1 builds with rustc >= 1.92 (~2 min on 2 cores).
S3S_VERSION=0.14.1
BIN="${CARGO_HOME:-$HOME/.cargo}/bin/s3s-fs"
PORT="${S3_PORT:-9000}"
DATA="${TMPDIR:-/tmp}/zv-s3"
# s3s-fs keeps each bucket as a plain directory under DATA, so pre-creating it is just mkdir.
BUCKET="${S3_BUCKET:-zv-test}"
URL="http://127.0.0.1:$PORT/"

# The binary sits behind the crate's `binary` feature; reinstall only on a version mismatch.
if [ "$("$BIN" --version 2>/dev/null)" != "s3s-fs $S3S_VERSION" ]; then
  cargo install --locked s3s-fs --version "$S3S_VERSION" --features binary
fi

[ "${1:-}" = start ] || [ "${ZV_TEST_S3_START:-0}" = 1 ] || exit 0

mkdir -p "$DATA/$BUCKET"
# Any HTTP status (an unsigned GET gets 403) means a server already answers: nothing to do.
answers() { [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$URL" || true)" != 000 ]; }
if answers; then
  echo "s3-server: already listening on 127.0.0.1:$PORT"
  exit 0
fi

CMD=("$BIN" --host 127.0.0.1 --port "$PORT" --access-key zvtest --secret-key zvtestsecret "$DATA")
echo "s3-server: starting: ${CMD[*]}"
# setsid + nohup: the server must outlive this script (and CI's shell); log beside the data.
setsid nohup "${CMD[@]}" >"$DATA.log" 2>&1 </dev/null &
echo $! >"$DATA.pid"

for _ in $(seq 60); do
  answers && { echo "s3-server: ready on $URL (bucket '$BUCKET')"; exit 0; }
  sleep 0.5
done
echo "s3-server: not answering on $URL after 30 s; log: $DATA.log" >&2
tail -n 20 "$DATA.log" >&2 || true
exit 1
