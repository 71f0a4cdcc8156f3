#!/usr/bin/env bash
# Sets up and runs the whole platform in one process (`zv up`) on 127.0.0.1:8000.
# Needs only PostgreSQL, which this starts (or installs from Debian's packages) when it is
# not answering. Any further arguments go to `zv` (e.g. `--config zonevast.toml`).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v pg_isready >/dev/null || ! pg_isready -q -h 127.0.0.1 -p 5432; then
  bash scripts/services.sh
fi
exec cargo run --release --locked -p zv -- "$@" up
