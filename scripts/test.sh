#!/usr/bin/env bash
# The whole test suite: formatting, lints, then every unit and integration test against real
# PostgreSQL and Redis (started here if needed) and a local S3-compatible server (s3s-fs,
# installed from crates.io on first use) for the object-storage tests; then Schemathesis over
# every service's OpenAPI document against a seeded `zv up` (scripts/fuzz.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/services.sh
bash scripts/s3-server.sh start
# Databases left behind by an interrupted run (each test makes its own t<id>_zv_* set).
psql -h 127.0.0.1 -U postgres -Atqc "SELECT datname FROM pg_database WHERE datname ~ '^t[0-9a-f]{12}_zv_'" postgres \
  | while read -r db; do psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" postgres; done

# Queues left on the shared RabbitMQ by an interrupted run (namespaces zvtest.*).
if command -v rabbitmqctl >/dev/null 2>&1; then
  { rabbitmqctl list_queues -q name 2>/dev/null || true; } | { grep '^zvtest\.' || true; } | while read -r q; do rabbitmqctl delete_queue -q "$q" </dev/null >/dev/null 2>&1 || true; done
fi

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
else
  cargo test --workspace --locked --no-fail-fast
fi
bash scripts/fuzz.sh
