#!/usr/bin/env bash
# Latchkey load benchmark, one command:   bench/run.sh
#
# 1. builds the release binary (cargo build --release -p latchkey),
# 2. starts Latchkey (SQLite in a fresh temp dir, test mode, plain HTTP on a
#    free port, RUST_LOG=warn) and the peer node-oidc-provider,
# 3. provisions a machine user, client secret, API key and access token
#    through the admin API, and drives both servers with wrk (separate
#    process, 64 connections, 2 threads), A B A B:
#      token issuance   Latchkey POST /oauth/token  vs  peer POST /token
#      healthz / verify / introspect   (healthz = the framework's ceiling)
# 4. on a fresh data dir, creates API keys through POST /v1/api-keys,
#    restarts Latchkey and measures VmRSS with 10k and 100k (1M with
#    BENCH_KEYS, below) of them cached (each verified once),
# 5. logins: a single password login's latency, and issuance under a flood
#    of 200 wrong-password connections (bench/results/logins.json),
# 6. writes bench/results/latest.json and prints a summary table.
#
# Settings (environment):
#   BENCH_DURATION=10        seconds per measured wrk run
#   BENCH_ROUNDS=3           A B A B rounds (median over rounds)
#   BENCH_WARMUP=3           seconds of unreported warm-up per case
#   BENCH_CONNECTIONS=64     wrk -c
#   BENCH_THREADS=2          wrk -t
#   BENCH_KEYS=10000,100000  memory steps: keys cached (the store holds the
#                            largest number); bytes/key = RSS difference of the
#                            first and last step. The full measurement of
#                            issue 5 is BENCH_KEYS=10000,100000,1000000 (adds
#                            ~8 min on 2 cores: 1M creates at ~2.5k/s). "0"
#                            skips the memory part.
#   BENCH_LOGINS=0           skip the login part
#   BENCH_SKIP_BUILD=1       use the existing binary
#   LATCHKEY_BIN             binary (default $CARGO_TARGET_DIR or target/, release)
#   PEER_RUN                 the peer's start script
#                            (default /work/shared/peers/node-oidc-provider/run.sh)
#   PEER_DIR                 the peer's own install dir, read by its run.sh
#                            (default there: /tmp/latchkey-peer-node-oidc)
#   BENCH_OUT                result file (default bench/results/latest.json)
#   BENCH_KEEP_TMP=1         keep the temp dir (server logs, key files)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)

DURATION=${BENCH_DURATION:-10}
ROUNDS=${BENCH_ROUNDS:-3}
WARMUP=${BENCH_WARMUP:-3}
CONNECTIONS=${BENCH_CONNECTIONS:-64}
THREADS=${BENCH_THREADS:-2}
KEYS=${BENCH_KEYS:-10000,100000}
PEER_RUN=${PEER_RUN:-/work/shared/peers/node-oidc-provider/run.sh}
OUT=${BENCH_OUT:-$here/results/latest.json}
PY=${PYTHON:-python3}

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }

tmp=$(mktemp -d /tmp/latchkey-bench.XXXXXX)
lk_pid=""
peer_pid=""
py_pid=""
stop_pid() {
    local pid=$1
    [ -n "$pid" ] || return 0
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
}
cleanup() {
    local rc=$?
    stop_pid "$py_pid"   # it stops its own wrk
    stop_pid "$lk_pid"
    stop_pid "$peer_pid"
    if [ "${BENCH_KEEP_TMP:-0}" = 1 ] || [ "$rc" != 0 ]; then
        log "logs and key files kept in $tmp"
    else
        rm -rf "$tmp"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- tools -------------------------------------------------------------------
if ! command -v wrk >/dev/null; then
    log "installing wrk (Debian package)"
    sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq && $sudo apt-get install -y -qq wrk >/dev/null
fi
command -v node >/dev/null || die "node is needed for the peer (apt-get install nodejs npm)"
command -v "$PY" >/dev/null || die "python3 is needed"
[ -x "$PEER_RUN" ] || [ -f "$PEER_RUN" ] || die "peer start script not found: $PEER_RUN (set PEER_RUN)"

# --- build -------------------------------------------------------------------
target_dir=${CARGO_TARGET_DIR:-$repo/target}
bin=${LATCHKEY_BIN:-$target_dir/release/latchkey}
if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
    log "cargo build --release -p latchkey (can take 5-15 minutes on 2 cores)"
    (cd "$repo" && cargo build --release -p latchkey)
fi
[ -x "$bin" ] || die "no binary at $bin"

# The driver runs in the background and is waited for, so that a signal to
# this script runs the cleanup at once (bash defers traps while a foreground
# child runs).
py() {
    "$PY" "$here/loadbench.py" "$@" &
    py_pid=$!
    wait "$py_pid"
    py_pid=""
}

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_http() { # url pid what seconds
    local url=$1 pid=$2 what=$3 secs=$4
    for _ in $(seq 1 $((secs * 5))); do
        curl -fsS -o /dev/null "$url" 2>/dev/null && return 0
        kill -0 "$pid" 2>/dev/null || die "$what exited during start-up (log: $tmp)"
        sleep 0.2
    done
    die "$what did not answer $url within $secs s"
}

admin=$("$PY" "$here/loadbench.py" gen-key test admin)
live_admin=$("$PY" "$here/loadbench.py" gen-key live admin)

start_latchkey() { # name [extra serve flags…]
    local name=$1 port
    shift
    port=$(free_port)
    mkdir -p "$tmp/$name"
    # Test mode: the bootstrap test admin key is ours; live is never used
    # (it needs TLS), its key is set only so nothing is printed.
    LATCHKEY_BOOTSTRAP_TEST_ADMIN_KEY=$admin \
    LATCHKEY_BOOTSTRAP_LIVE_ADMIN_KEY=$live_admin \
    RUST_LOG=warn \
        "$bin" serve --listen "127.0.0.1:$port" --data-dir "$tmp/$name/data" "$@" \
        >"$tmp/$name/stdout.log" 2>"$tmp/$name/stderr.log" &
    lk_pid=$!
    lk_url="http://127.0.0.1:$port"
    wait_http "$lk_url/healthz" "$lk_pid" "latchkey ($name)" 60
    log "latchkey ($name) pid $lk_pid on $lk_url, data $tmp/$name/data"
}

load_before=$(awk '{printf "[%s, %s, %s]", $1, $2, $3}' /proc/loadavg)
log "load average before start: $load_before (other work on the machine skews every figure)"

# --- throughput ----------------------------------------------------------------
start_latchkey throughput

peer_port=$(free_port)
log "starting the peer: $PEER_RUN (npm install on first use)"
PORT=$peer_port bash "$PEER_RUN" >"$tmp/peer.log" 2>&1 &
peer_pid=$!   # run.sh execs node: this pid becomes the node process
wait_http "http://127.0.0.1:$peer_port/.well-known/openid-configuration" "$peer_pid" "peer" 300
log "peer pid $peer_pid on http://127.0.0.1:$peer_port"

mkdir -p "$here/results"
rm -rf "$here/results/raw"
py throughput \
    --latchkey "$lk_url" --latchkey-pid "$lk_pid" \
    --peer "http://127.0.0.1:$peer_port" --peer-pid "$peer_pid" \
    --admin "$admin" --duration "$DURATION" --rounds "$ROUNDS" --warmup "$WARMUP" \
    --connections "$CONNECTIONS" --threads "$THREADS" \
    --results "$here/results" --out "$tmp/throughput.json"

stop_pid "$peer_pid"; peer_pid=""
stop_pid "$lk_pid"; lk_pid=""

# --- logins ------------------------------------------------------------------------
# A single password login's latency, and client-credentials issuance under a
# flood of 200 connections sending wrong passwords (A B A B against
# issuance without it). The failure limits are lifted so that every wrong
# password costs an Argon2id check, as from an attacker with many addresses.
if [ "${BENCH_LOGINS:-1}" != 0 ]; then
    start_latchkey logins --max-failures-per-address 1000000000 --max-failures-per-client 1000000000
    py login-flood --latchkey "$lk_url" --latchkey-pid "$lk_pid" --admin "$admin" \
        --duration "$DURATION" --rounds "$ROUNDS" --warmup "$WARMUP" \
        --connections "$CONNECTIONS" --threads "$THREADS" \
        --results "$here/results" --out "$here/results/logins.json"
    stop_pid "$lk_pid"; lk_pid=""
fi

# --- memory ------------------------------------------------------------------------
# Keys are created first, while no key is cached (creating a key scans the
# cached keys, so creates get slower with every cached key), then Latchkey is
# restarted on the same store and the keys are verified once each, in steps,
# reading VmRSS after each step.
mem_args=()
if [ "$KEYS" != 0 ]; then
    start_latchkey memory
    py memory-seed --latchkey "$lk_url" --admin "$admin" --keys "$KEYS" \
        --data-dir "$tmp/memory/data" --work "$tmp/memory/keys" \
        --connections "$CONNECTIONS" --threads "$THREADS" --out "$tmp/seed.json"
    stop_pid "$lk_pid"; lk_pid=""
    start_latchkey memory
    py memory-measure --latchkey "$lk_url" --pid "$lk_pid" --admin "$admin" --keys "$KEYS" \
        --work "$tmp/memory/keys" --seed "$tmp/seed.json" \
        --connections "$CONNECTIONS" --threads "$THREADS" --out "$tmp/memory.json"
    stop_pid "$lk_pid"; lk_pid=""
    mem_args=(--memory "$tmp/memory.json")
fi

# --- report --------------------------------------------------------------------
py report --throughput "$tmp/throughput.json" "${mem_args[@]}" \
    --repo "$repo" --load-before "$load_before" --out "$OUT"
