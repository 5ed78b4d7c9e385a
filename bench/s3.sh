#!/usr/bin/env bash
# What the S3 backend costs: our ftp-server on the local backend, the same server on
# --storage s3:// (a single Garage node on loopback), and the object store itself
# without FTP, side by side; prints one Markdown table.
#
#   bench/s3.sh                         # 256 MiB large file, 3 rounds
#   bench/s3.sh --size 64M --rounds 1   # smaller and quicker
#
# Options: --size N (bytes, or with K/M/G), --rounds N, --sessions N and --count N (the
# small-file workloads: concurrent clients x transfers each), --keep (leave the run
# directory on /dev/shm).
#
# What it does: builds ours in release, starts Garage (the binary .ci/run builds,
# $SIMPLE_FTP_PEERS/garage/bin/garage) on free loopback ports with its data on /dev/shm,
# applies a layout, makes a bucket and a key, then starts two servers (--workers 64):
# "local" serving a directory on /dev/shm, "s3" serving s3://BUCKET/bench. The test files
# (large and 4 KiB) go into both (into the s3 one by FTP STOR, through the backend). Each
# round runs ftp-bench retr-large, stor-large, retr-small and stor-small against both,
# and ftp-bench s3-direct (the same four as plain S3 PUTs and GETs) against Garage as
# "direct"; the order of the three rotates every round. The s3 server's CPU figure is
# its own plus Garage's (both PIDs are measured); direct's is Garage's. Everything it
# started is stopped by PID on exit; every step has a timeout.
set -euo pipefail

SIZE=256M
ROUNDS=3
SESSIONS=8
COUNT=25
KEEP=0
while [ $# -gt 0 ]; do
    case "$1" in
        --size) SIZE="$2"; shift ;;
        --rounds) ROUNDS="$2"; shift ;;
        --sessions) SESSIONS="$2"; shift ;;
        --count) COUNT="$2"; shift ;;
        --keep) KEEP=1 ;;
        -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
        *) echo "s3.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
BIG="$(numfmt --from=iec "$SIZE")" || { echo "s3.sh: bad --size $SIZE" >&2; exit 2; }
SMALL=4096
DEADLINE=120    # seconds any one workload may take
TIMEOUT=30      # seconds any one operation may take

REPO="$(cd "$(dirname "$0")/.." && pwd)"
PEERS="${SIMPLE_FTP_PEERS:-/var/cache/simple-ftp-bench}"
GARAGE="$PEERS/garage/bin/garage"
OUT="$REPO/target/bench"
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
RUN="/dev/shm/simple-ftp-s3bench.$$"
BENCH="$REPO/target/release/ftp-bench"
SERVER="$REPO/target/release/ftp-server"
START_TIME=$(date +%s)

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

[ "$(uname -s)" = Linux ] || die "Linux only (/proc, /dev/shm)"
[ -x "$GARAGE" ] || command -v garage >/dev/null || die "no Garage at $GARAGE (.ci/run builds it)"
[ -x "$GARAGE" ] || GARAGE="$(command -v garage)"

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_port() {   # wait until something accepts on 127.0.0.1:$1 (at most 20 s)
    for _ in $(seq 1 200); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    return 1
}

PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    mkdir -p "$OUT/logs-s3-$STAMP"
    cp "$RUN"/*.log "$OUT/logs-s3-$STAMP/" 2>/dev/null || true
    if [ "$KEEP" = 0 ]; then rm -rf "$RUN"; else log "kept $RUN"; fi
}

log "building ours (release)"
(cd "$REPO" && timeout 1800 cargo build --release --quiet --bin ftp-server --bin ftp-bench)

mkdir -p "$OUT" "$RUN/local" "$RUN/root-local/pub" "$RUN/garage"
RESULTS="$OUT/results-s3-$STAMP.tsv"
: >"$RESULTS"
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- Garage
# One node, as tests/it/garage.rs starts it: sqlite metadata, replication factor 1.
RPC_PORT="$(free_port)"
S3_PORT="$(free_port)"
G="$RUN/garage"
cat >"$G/garage.toml" <<TOML
metadata_dir = "$G/meta"
data_dir = "$G/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:$RPC_PORT"
rpc_public_addr = "127.0.0.1:$RPC_PORT"
rpc_secret = "$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')"
[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$S3_PORT"
root_domain = ".s3.garage.localhost"
TOML
chmod 0600 "$G/garage.toml"   # Garage refuses a secret others can read
RUST_LOG=garage=warn "$GARAGE" -c "$G/garage.toml" server >"$RUN/garage.log" 2>&1 &
GARAGE_PID=$!
PIDS+=("$GARAGE_PID")
gcli() { timeout 30 "$GARAGE" -c "$G/garage.toml" "$@"; }
gretry() {   # a CLI command, until the node answers (at most 30 s)
    for _ in $(seq 1 150); do
        if gcli "$@" >"$RUN/gcli.out" 2>&1; then cat "$RUN/gcli.out"; return 0; fi
        sleep 0.2
    done
    cat "$RUN/gcli.out" >&2
    die "garage $* kept failing (see $RUN/garage.log)"
}
NODE="$(gretry node id -q | cut -d@ -f1)"
[ -n "$NODE" ] || die "garage printed no node id"
gretry layout assign -z dc1 -c 10G "$NODE" >/dev/null
gretry layout apply --version 1 >/dev/null
export AWS_ACCESS_KEY_ID="GK$(od -An -tx1 -N12 /dev/urandom | tr -d ' \n')"
export AWS_SECRET_ACCESS_KEY="$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')"
gretry key import --yes -n bench "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY" >/dev/null
gretry bucket create bench >/dev/null
gretry bucket allow --read --write --owner bench --key "$AWS_ACCESS_KEY_ID" >/dev/null
log "garage: PID $GARAGE_PID, S3 API on 127.0.0.1:$S3_PORT, data in $G"

# ---------------------------------------------------------------- our servers
declare -A PORT SPID
start_ours() {   # name, then the storage flags
    local name="$1" port=""; shift
    "$SERVER" --port 0 --workers 64 "$@" >"$RUN/$name.out" 2>"$RUN/$name.log" &
    SPID[$name]=$!
    PIDS+=("${SPID[$name]}")
    # The s3 server checks the bucket before it listens; Garage may still be settling
    # its layout: it says so and exits, so it is started again (at most 30 s).
    for _ in $(seq 1 300); do
        # (The file appears once the child has opened it: not yet, on a busy machine.)
        port="$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$RUN/$name.out" 2>/dev/null || true)"
        [ -n "$port" ] && break
        kill -0 "${SPID[$name]}" 2>/dev/null || {
            sleep 0.5
            "$SERVER" --port 0 --workers 64 "$@" >"$RUN/$name.out" 2>"$RUN/$name.log" &
            SPID[$name]=$!
            PIDS+=("${SPID[$name]}")
        }
        sleep 0.1
    done
    [ -n "$port" ] && wait_port "$port" || { cat "$RUN/$name.log" >&2; die "$name did not start"; }
    PORT[$name]=$port
    log "$name: PID ${SPID[$name]}, port $port"
}
start_ours local --root "$RUN/root-local"
start_ours s3 --storage s3://bench/bench --s3-endpoint "http://127.0.0.1:$S3_PORT" --s3-region garage

# ---------------------------------------------------------------- test files
log "making the test files ($BIG and $SMALL bytes)"
BIG_SHA="$("$BENCH" mkfile "$RUN/big.bin" "$BIG")"
SMALL_SHA="$("$BENCH" mkfile "$RUN/small.bin" "$SMALL")"
cp "$RUN/big.bin" "$RUN/small.bin" "$RUN/root-local/pub/"
for f in big.bin small.bin; do
    timeout 300 curl -sS --ftp-create-dirs -T "$RUN/$f" "ftp://127.0.0.1:${PORT[s3]}/pub/$f" \
        || die "uploading $f to the s3 server failed"
done
# Read back through the s3 server: what it serves is what was put.
got="$(timeout 300 curl -sS "ftp://127.0.0.1:${PORT[s3]}/pub/big.bin" | sha256sum | cut -d' ' -f1)"
[ "$got" = "$BIG_SHA" ] || die "the s3 server's big.bin has SHA-256 $got, expected $BIG_SHA"

# ---------------------------------------------------------------- workloads
# Runs one ftp-bench command; a crash becomes a FAIL line. `timeout` bounds it beyond
# ftp-bench's own watchdog.
bench() {
    local label="$1" round="$2" workload="$3"; shift 3
    local before
    before=$(wc -l <"$RESULTS")
    if ! timeout $((DEADLINE + TIMEOUT + 60)) "$BENCH" "$workload" --label "$label" --round "$round" \
        --local "$RUN/local" --deadline "$DEADLINE" --timeout "$TIMEOUT" "$@" \
        >>"$RESULTS" 2>>"$RUN/ftp-bench.log"; then
        printf '%s\t%s\t%s\tftp-bench\t0\t-\t0\t0\t-\t0\tFAIL\tftp-bench %s exited with an error (see its log)\n' \
            "$label" "$round" "$workload" "$workload" >>"$RESULTS"
    fi
    tail -n +$((before + 1)) "$RESULTS" | cut -f 1,3-6,11 | tr '\t' ' ' | sed 's/^/    /' >&2
}

ftp_round() {   # label, round, then the flags naming the server
    local label="$1" round="$2"; shift 2
    bench "$label" "$round" retr-large "$@" --file big.bin --size "$BIG" --sha256 "$BIG_SHA"
    bench "$label" "$round" stor-large "$@" --local-file "$RUN/big.bin" --sha256 "$BIG_SHA"
    bench "$label" "$round" retr-small "$@" --file small.bin --size "$SMALL" --sha256 "$SMALL_SHA" \
        --sessions "$SESSIONS" --count "$COUNT"
    bench "$label" "$round" stor-small "$@" --local-file "$RUN/small.bin" \
        --sessions "$SESSIONS" --count "$COUNT"
}

run_one() {
    local what="$1" round="$2"
    log "round $round: $what"
    case "$what" in
        local) ftp_round local "$round" --port "${PORT[local]}" --dir pub \
                   --served-dir "$RUN/root-local/pub" --pid "${SPID[local]}" ;;
        # Garage does the s3 server's storing: its CPU counts as the server's.
        s3) ftp_round s3 "$round" --port "${PORT[s3]}" --dir pub \
                --pid "${SPID[s3]},$GARAGE_PID" ;;
        direct) bench direct "$round" s3-direct --port "$S3_PORT" --dir direct --pid "$GARAGE_PID" \
                    --bucket bench --region garage --large-file "$RUN/big.bin" \
                    --small-file "$RUN/small.bin" --sessions "$SESSIONS" --count "$COUNT" ;;
    esac
}

ORDER=(local s3 direct)
for round in $(seq 1 "$ROUNDS"); do
    printf 'machine\t%s\tloadavg\t/proc/loadavg\t%s\tload\t0\t0\t-\t0\tok\t%s\n' \
        "$round" "$(cut -d' ' -f1 /proc/loadavg)" "$(cat /proc/loadavg)" >>"$RESULTS"
    for i in 0 1 2; do run_one "${ORDER[$(( (i + round - 1) % 3 ))]}" "$round"; done
done

ELAPSED=$(( $(date +%s) - START_TIME ))
TABLE="$OUT/table-s3-$STAMP.md"
{
    echo "Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), Linux $(uname -r); load average as it ended: $(cut -d' ' -f1-3 /proc/loadavg)."
    echo "Run: bench/s3.sh --size $SIZE --rounds $ROUNDS --sessions $SESSIONS --count $COUNT; took $((ELAPSED / 60)) min $((ELAPSED % 60)) s."
    echo "local: ftp-server --root on /dev/shm. s3: ftp-server --storage s3:// on a single Garage node (data on /dev/shm); its CPU is the server's plus Garage's. direct: the same transfers as plain S3 PUT/GET to Garage (ftp-bench s3-direct), CPU Garage's."
    echo "Median (min–max) over rounds. The ratio column is s3 against the best other (local or direct)."
    echo
    "$BENCH" table --ours s3 "$RESULTS"
} >"$TABLE"
cat "$TABLE"
log "results: $RESULTS; table: $TABLE"
