#!/usr/bin/env bash
# Makes sure PostgreSQL (required), Redis (Redis-mode tests) and RabbitMQ (broker-mode events)
# answer on 127.0.0.1,
# installing them from Debian's packages and starting them when they do not.
set -euo pipefail

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_install() {
  as_root apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}

command -v pg_isready >/dev/null || apt_install postgresql-client
# The SMTP test talks to Python's standard-library SMTP server (Debian bookworm's python3).
command -v python3 >/dev/null || apt_install python3
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  [ -d /etc/postgresql ] || apt_install postgresql
  as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  for _ in $(seq 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi
pg_isready -q -h 127.0.0.1 -p 5432 || { echo "PostgreSQL is not reachable on 127.0.0.1:5432" >&2; exit 1; }

command -v redis-cli >/dev/null || apt_install redis-tools
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  command -v redis-server >/dev/null || apt_install redis-server
  as_root redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir /tmp --logfile /tmp/zv-redis.log
  for _ in $(seq 30); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 0.5; done
fi
redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null || { echo "Redis is not reachable on 127.0.0.1:6379" >&2; exit 1; }

# RabbitMQ, for the broker-mode event tests.
rabbit_up() { (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; }
if ! rabbit_up; then
  command -v rabbitmq-server >/dev/null || apt_install rabbitmq-server
  as_root rabbitmq-server -detached || true
  for _ in $(seq 60); do rabbit_up && break; sleep 1; done
fi
rabbit_up || { echo "RabbitMQ is not reachable on 127.0.0.1:5672" >&2; exit 1; }
