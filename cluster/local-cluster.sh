#!/usr/bin/env bash
# A multi-node Ray cluster on one machine, for trying the Serve app's multi-node behaviour
# (placement, autoscaling across nodes, a node going away) without a cloud.
#
#   cluster/local-cluster.sh start [N_NODES] [CPUS_PER_NODE]   # default: 2 nodes, 2 CPUs each
#   cluster/local-cluster.sh status
#   cluster/local-cluster.sh stop
#
# Node 0 is the head (`ray start --head`); nodes 1..N-1 join it. Every node declares the custom
# resource $RAY_LOCAL_RESOURCE (default "accelerator": 1) standing in for a GPU, and 0 GPUs.
# Each node is a `ray start --block` process in the background with its own --temp-dir (logs,
# sockets), worker-port range and dashboard-agent port, so the nodes coexist; their PIDs are
# recorded under the state dir and `stop` signals exactly those processes (SIGTERM: Ray drains
# the node and stops its own children; SIGKILL after a timeout: the children go with it). It
# never uses `ray stop`, which would stop every Ray process of this machine.
#
# Use it:   export RAY_ADDRESS=127.0.0.1:6379       (what `start` prints)
#           serve run serve_config.yaml               (or: serve deploy -a http://127.0.0.1:8265 ...)
# Tests use ray.cluster_utils.Cluster (the same idea, in process) instead of this script.
#
# Settings (environment):
#   RAY_LOCAL_DIR              state dir: pids, logs, temp dirs (default ${TMPDIR:-/tmp}/ray-local-$UID)
#   RAY_LOCAL_PORT             head GCS port (6379)
#   RAY_LOCAL_DASHBOARD_PORT   dashboard port (8265)
#   RAY_LOCAL_CLIENT_PORT      Ray client server port (10001)
#   RAY_LOCAL_AGENT_PORT       dashboard agent HTTP port of node 0; node i uses +i (52365)
#   RAY_LOCAL_WORKER_PORTS     first worker port; node i uses [base + 1000 i, base + 1000 i + 999] (20000)
#   RAY_LOCAL_RESOURCE         custom resource per node ("accelerator")
#   RAY_LOCAL_OBJECT_STORE     object store bytes per node (1 GiB)
#   RAY_LOCAL_TIMEOUT_S        seconds to wait for nodes to come up or stop (90)
#   RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S  Ray's drain time on SIGTERM (10 here; Ray's default 30)
set -euo pipefail

RAY="${RAY:-ray}"
# Loopback-only dev cluster: no token authentication, so drivers and `ray status` need no token
# file (Ray 2.60 enables it by default for `ray start --head`). Export the same in the driver.
export RAY_AUTH_MODE="${RAY_AUTH_MODE:-disabled}"
STATE_DIR="${RAY_LOCAL_DIR:-${TMPDIR:-/tmp}/ray-local-$(id -u)}"
PORT="${RAY_LOCAL_PORT:-6379}"
DASHBOARD_PORT="${RAY_LOCAL_DASHBOARD_PORT:-8265}"
CLIENT_PORT="${RAY_LOCAL_CLIENT_PORT:-10001}"
AGENT_PORT="${RAY_LOCAL_AGENT_PORT:-52365}"
WORKER_PORTS="${RAY_LOCAL_WORKER_PORTS:-20000}"
RESOURCE="${RAY_LOCAL_RESOURCE:-accelerator}"
OBJECT_STORE="${RAY_LOCAL_OBJECT_STORE:-1073741824}"
TIMEOUT_S="${RAY_LOCAL_TIMEOUT_S:-90}"
MAX_NODES=12
export RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S="${RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S:-10}"

ADDRESS="127.0.0.1:${PORT}"

usage() {
  sed -n '5,7p' "$0" | sed 's/^# *//'
  exit 2
}

die() {
  echo "local-cluster: $*" >&2
  exit 1
}

pid_files() {
  # node-0.pid .. node-K.pid in node order
  local node
  for ((node = 0; node < MAX_NODES; node++)); do
    if [[ -e "$STATE_DIR/node-$node.pid" ]]; then echo "$STATE_DIR/node-$node.pid"; fi
  done
}

# True when $1 is alive and is the `ray start` process of node $2 of THIS state dir (a recorded
# PID that the system has since reused for something else is left alone).
is_our_node() {
  local pid="$1" node="$2" args
  args="$(ps -o args= -p "$pid" 2>/dev/null)" || return 1
  [[ "$args" == *" start "* && "$args" == *"--temp-dir=$STATE_DIR/node-$node "* ]]
}

node_of() {
  local name
  name="$(basename "$1" .pid)"
  echo "${name#node-}"
}

any_alive() {
  local f pid
  for f in $(pid_files); do
    pid="$(cat "$f")"
    if is_our_node "$pid" "$(node_of "$f")"; then return 0; fi
  done
  return 1
}

# Active nodes according to `ray status` (0 when the cluster does not answer).
active_nodes() {
  local out
  out="$("$RAY" status --address "$ADDRESS" 2>/dev/null)" || out=""
  awk '/^Active:/ {on = 1; next} /^(Idle|Pending|Recent failures):/ {on = 0} on && / node_/ {n += $1} END {print n + 0}' <<<"$out"
}

start_node() {
  local node="$1" cpus="$2" log pid
  local dir="$STATE_DIR/node-$node"
  local min_port=$((WORKER_PORTS + 1000 * node))
  local args=(
    start --block
    --node-ip-address=127.0.0.1
    --num-cpus="$cpus" --num-gpus=0
    --resources="{\"$RESOURCE\": 1}"
    --object-store-memory="$OBJECT_STORE"
    --min-worker-port="$min_port" --max-worker-port=$((min_port + 999))
    --dashboard-agent-listen-port=$((AGENT_PORT + node))
    --disable-usage-stats
  )
  if [[ "$node" -eq 0 ]]; then
    args+=(--head --port="$PORT" --dashboard-port="$DASHBOARD_PORT" --ray-client-server-port="$CLIENT_PORT")
  else
    args+=(--address="$ADDRESS")
  fi
  # --temp-dir last, followed by a space in the process's args (is_our_node matches on it).
  args+=(--temp-dir="$dir" --log-style=record)
  mkdir -p "$dir"
  log="$STATE_DIR/node-$node.log"
  nohup "$RAY" "${args[@]}" >"$log" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$STATE_DIR/node-$node.pid"
  echo "node $node: pid $pid, log $log"
}

wait_for_nodes() {
  local want="$1" deadline=$((SECONDS + TIMEOUT_S)) have=0 f pid
  while ((SECONDS < deadline)); do
    for f in $(pid_files); do
      pid="$(cat "$f")"
      if ! is_our_node "$pid" "$(node_of "$f")"; then
        echo "local-cluster: node $(node_of "$f") (pid $pid) exited; its log:" >&2
        tail -n 30 "${f%.pid}.log" >&2 || true
        return 1
      fi
    done
    have="$(active_nodes)"
    if ((have >= want)); then return 0; fi
    sleep 1
  done
  echo "local-cluster: $have of $want nodes up after ${TIMEOUT_S}s" >&2
  return 1
}

cmd_start() {
  local n_nodes="${1:-2}" cpus="${2:-2}" node
  [[ "$n_nodes" =~ ^[0-9]+$ && "$n_nodes" -ge 1 && "$n_nodes" -le "$MAX_NODES" ]] ||
    die "N_NODES must be 1..$MAX_NODES (got '$n_nodes')"
  [[ "$cpus" =~ ^[0-9]+$ && "$cpus" -ge 1 ]] || die "CPUS_PER_NODE must be a positive integer (got '$cpus')"
  command -v "$RAY" >/dev/null || die "'$RAY' not found (pip install 'ray[serve]')"
  if any_alive; then
    die "already running (state in $STATE_DIR); run '$0 stop' first"
  fi
  mkdir -p "$STATE_DIR"
  # Leftovers of a previous run of this script (only what it names).
  rm -rf "$STATE_DIR"/node-[0-9]*

  start_node 0 "$cpus"
  if ! wait_for_nodes 1; then start_failed; fi
  for ((node = 1; node < n_nodes; node++)); do
    start_node "$node" "$cpus"
  done
  if ! wait_for_nodes "$n_nodes"; then start_failed; fi

  echo
  echo "Ray cluster of $n_nodes nodes x $cpus CPUs (+ \"$RESOURCE\": 1 each) at $ADDRESS"
  echo "  export RAY_ADDRESS=$ADDRESS"
  echo "  dashboard: http://127.0.0.1:$DASHBOARD_PORT    serve deploy -a http://127.0.0.1:$DASHBOARD_PORT CONFIG"
  echo "  $0 status | stop"
}

start_failed() {
  echo "local-cluster: start failed; stopping what was started" >&2
  cmd_stop
  exit 1
}

cmd_stop() {
  local files=() f pid node deadline alive
  mapfile -t files < <(pid_files)
  if ((${#files[@]} == 0)); then
    echo "local-cluster: nothing recorded in $STATE_DIR"
    return 0
  fi
  # Workers first (in reverse order), the head last: SIGTERM drains and stops each node.
  for ((i = ${#files[@]} - 1; i >= 0; i--)); do
    f="${files[i]}"
    pid="$(cat "$f")"
    node="$(node_of "$f")"
    if [[ "$node" == 0 && ${#files[@]} -gt 1 ]]; then
      wait_gone "${files[@]:1}"
    fi
    if is_our_node "$pid" "$node"; then
      echo "stopping node $node (pid $pid)"
      kill -TERM "$pid" 2>/dev/null || true
    fi
  done
  wait_gone "${files[@]}"
  alive=0
  for f in "${files[@]}"; do
    pid="$(cat "$f")"
    if is_our_node "$pid" "$(node_of "$f")"; then
      echo "node $(node_of "$f") (pid $pid) did not stop in time: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      alive=1
    fi
  done
  ((alive)) && sleep 2
  rm -f "${files[@]}"
  echo "stopped (logs stay in $STATE_DIR)"
}

# Wait until none of the given pid files' processes is alive, or the timeout passes.
wait_gone() {
  local deadline=$((SECONDS + TIMEOUT_S)) f any
  while ((SECONDS < deadline)); do
    any=0
    for f in "$@"; do
      if is_our_node "$(cat "$f")" "$(node_of "$f")"; then any=1; fi
    done
    ((any)) || return 0
    sleep 1
  done
  return 0
}

cmd_status() {
  local f pid state
  local files=()
  mapfile -t files < <(pid_files)
  if ((${#files[@]} == 0)); then
    echo "local-cluster: not started (nothing recorded in $STATE_DIR)"
    return 1
  fi
  for f in "${files[@]}"; do
    pid="$(cat "$f")"
    state="gone"
    if is_our_node "$pid" "$(node_of "$f")"; then state="running"; fi
    echo "node $(node_of "$f"): pid $pid $state"
  done
  "$RAY" status --address "$ADDRESS"
}

case "${1:-}" in
  start) shift; cmd_start "$@" ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  *) usage ;;
esac
