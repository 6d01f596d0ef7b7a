#!/usr/bin/env bash
# The gateway's multi-process scale run (docs/SCALE.md): 2 backend nodes
# (one the etcd master, one broadcasting to a group), 3 gateway nodes,
# each a process of bench/scale, and bots in several processes.
#
#   scripts/scale.sh [clients] [measure]      default 50000 and 30s
#
# Phase 1: the active bots alone (5% of the clients, one request a second
# each; 1,000 of them in the broadcast group). Phase 2: the idle mass
# (the other 95%, logged in, holding their sessions in three processes)
# connects, then the active bots run again. It prints each phase's
# report, the gateways' connections and memory, and the etcd keys.
# Not part of CI: it takes the machine for a few minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-50000}
MEASURE=${2:-30s}
ACTIVE=$((N / 20))
ROOM=1000
IDLE=$((N - ACTIVE))
work=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
}
trap cleanup EXIT
(cd bench && go build -o "$work/scale" ./scale/)

cat >"$work/cluster.yaml" <<'EOF'
cluster:
  etcd: {ttl: 5s, prefix: /scale}
nodes:
  be1: {addr: 1.2.1, master: 127.0.0.1:0, modules: [scale]}
  be2: {addr: 1.2.2, modules: [scale]}
  gw1:
    addr: 1.1.1
    gateway:
      tcp: 127.0.0.1:0
      public: [scale.Login]
      routes: {scale: {module: scale}}
      limits: {max_conns: 40000, login_timeout: 10m}
  gw2:
    addr: 1.1.2
    gateway:
      tcp: 127.0.0.1:0
      public: [scale.Login]
      routes: {scale: {module: scale}}
      limits: {max_conns: 40000, login_timeout: 10m}
  gw3:
    addr: 1.1.3
    gateway:
      tcp: 127.0.0.1:0
      public: [scale.Login]
      routes: {scale: {module: scale}}
      limits: {max_conns: 40000, login_timeout: 10m}
modules:
  scale: {broadcast: false}
EOF

# start NAME [VAR=value...]: runs node NAME and waits for its Ready line.
start() {
	local name=$1
	shift
	env "$@" "$work/scale" node -c "$work/cluster.yaml" -node "$name" >"$work/$name.out" 2>"$work/$name.err" &
	pids+=($!)
	eval "pid_$name=$!"
	for _ in $(seq 600); do
		grep -q '"node"' "$work/$name.out" 2>/dev/null && return 0
		sleep 0.1
	done
	echo "scale: node $name did not start:" >&2
	cat "$work/$name.err" >&2
	exit 1
}
start be1 GUILD_MODULES_SCALE_BROADCAST=true
etcd=$(grep -o '"etcd":\["[^"]*"' "$work/be1.out" | sed 's/.*\["//; s/"$//')
start be2 GUILD_CLUSTER_ETCD_ENDPOINTS="$etcd"
addrs=()
for g in gw1 gw2 gw3; do
	start "$g" GUILD_CLUSTER_ETCD_ENDPOINTS="$etcd"
	addrs+=("$(grep -o '"tcp":"[^"]*"' "$work/$g.out" | sed 's/"tcp":"//; s/"$//')")
done
gates=$(
	IFS=,
	echo "${addrs[*]}"
)
echo "gateways: $gates; etcd: $etcd"

# rss PID: its resident memory in KiB.
rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
# cpu: the gateways' and the backends' CPU time so far, in clock ticks.
cpu() {
	local sum=0 p
	for p in "$@"; do
		sum=$((sum + $(awk '{print $14 + $15}' "/proc/$p/stat")))
	done
	echo "$sum"
}
ticks=$(getconf CLK_TCK)
gateway_rss() { echo "$(rss "$pid_gw1") $(rss "$pid_gw2") $(rss "$pid_gw3")"; }
sleep 2
base=$(gateway_rss)
echo "gateway RSS before any client (KiB): $base"

echo "phase 1: $ACTIVE active clients alone, $ROOM of them in the room"
g0=$(cpu "$pid_gw1" "$pid_gw2" "$pid_gw3")
b0=$(cpu "$pid_be1" "$pid_be2")
t0=$(date +%s)
"$work/scale" bots -addrs "$gates" -n "$ACTIVE" -active "$ACTIVE" -room "$ROOM" -ramp 10s -measure "$MEASURE" -offset 0 >"$work/phase1.json" 2>"$work/phase1.err"
echo "phase 1: $(cat "$work/phase1.json")"
echo "phase 1 CPU (cores, over the whole phase with its ramp): gateways $(( ($(cpu "$pid_gw1" "$pid_gw2" "$pid_gw3") - g0) * 100 / ticks / ($(date +%s) - t0) ))%, backends $(( ($(cpu "$pid_be1" "$pid_be2") - b0) * 100 / ticks / ($(date +%s) - t0) ))%"

echo "phase 2: $IDLE idle clients in 3 processes, then the active clients again"
per=$(((IDLE + 2) / 3))
idle=()
for i in 0 1 2; do
	"$work/scale" bots -addrs "$gates" -n "$per" -offset $((1000000 + i * per)) -ramp 60s -measure 1s -hold 1h \
		>"$work/idle$i.json" 2>"$work/idle$i.err" &
	idle+=($!)
	pids+=($!)
done
for i in 0 1 2; do
	for _ in $(seq 3000); do
		grep -q "connected" "$work/idle$i.err" 2>/dev/null && break
		sleep 0.1
	done
	echo "idle bots $i: $(grep connected "$work/idle$i.err")"
done
sleep 5
held=$(gateway_rss)
echo "gateway RSS with the idle mass (KiB): $held"
g0=$(cpu "$pid_gw1" "$pid_gw2" "$pid_gw3")
sleep 10
echo "the idle mass alone, CPU of the gateways: $(( ($(cpu "$pid_gw1" "$pid_gw2" "$pid_gw3") - g0) * 100 / ticks / 10 ))% of a core"
g0=$(cpu "$pid_gw1" "$pid_gw2" "$pid_gw3")
b0=$(cpu "$pid_be1" "$pid_be2")
t0=$(date +%s)
"$work/scale" bots -addrs "$gates" -n "$ACTIVE" -active "$ACTIVE" -room "$ROOM" -ramp 10s -measure "$MEASURE" -offset 2000000 >"$work/phase2.json" 2>"$work/phase2.err"
echo "phase 2: $(cat "$work/phase2.json")"
echo "phase 2 CPU (cores, over the whole phase with its ramp): gateways $(( ($(cpu "$pid_gw1" "$pid_gw2" "$pid_gw3") - g0) * 100 / ticks / ($(date +%s) - t0) ))%, backends $(( ($(cpu "$pid_be1" "$pid_be2") - b0) * 100 / ticks / ($(date +%s) - t0) ))%"
echo "bot processes' RSS (KiB): $(for p in "${idle[@]}"; do rss "$p"; done | tr '\n' ' ')"
echo "gateway connections (from /proc, sockets): $(for g in "$pid_gw1" "$pid_gw2" "$pid_gw3"; do ls "/proc/$g/fd" | wc -l; done | tr '\n' ' ')"
for p in "${idle[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
for i in 0 1 2; do
	for _ in $(seq 300); do
		[ -s "$work/idle$i.json" ] && break
		sleep 0.1
	done
	echo "idle bots $i: $(cat "$work/idle$i.json")"
done
read -r b1 b2 b3 <<<"$base"
read -r h1 h2 h3 <<<"$held"
echo "gateway memory per idle connection: $(( (h1 + h2 + h3 - b1 - b2 - b3) * 1024 / IDLE )) bytes"
echo "logs in $work"
