#!/usr/bin/env bash
# Starts the local services that guild's integration tests use, when they are
# installed but not running: PostgreSQL, MariaDB, Redis, RabbitMQ, Mosquitto
# and NATS with JetStream, on their standard loopback ports. A service that is
# not installed is skipped; the tests that need it skip with a message.
# Safe to run repeatedly.
set -u

up() { # host port
  (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

wait_up() { # name host port
  for _ in $(seq 1 60); do
    up "$2" "$3" && return 0
    sleep 0.5
  done
  echo "services: $1 did not come up on $2:$3" >&2
  return 1
}

start() { # name port command...
  local name=$1 port=$2
  shift 2
  if up 127.0.0.1 "$port"; then
    return 0
  fi
  if ! command -v "$1" >/dev/null 2>&1; then
    echo "services: $name is not installed; tests that need it will skip"
    return 0
  fi
  echo "services: starting $name"
  "$@" >/dev/null 2>&1 || true
  wait_up "$name" 127.0.0.1 "$port" || true
}

if command -v pg_ctlcluster >/dev/null 2>&1 && ! up 127.0.0.1 5432; then
  echo "services: starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start >/dev/null 2>&1 || true
  wait_up PostgreSQL 127.0.0.1 5432 || true
fi
start MariaDB 3306 start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
start Redis 6379 redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log
start RabbitMQ 5672 rabbitmq-server -detached
start Mosquitto 1883 mosquitto -d -c /etc/mosquitto/mosquitto.conf
start NATS 4222 start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log
exit 0
