#!/usr/bin/env bash
# Compares our ftp-server with vsftpd, pure-ftpd, proftpd and pyftpdlib (async and
# threaded) on this machine, on loopback, and prints one Markdown table.
#
#   bench/compare.sh            # full run: 1 GiB files, 3 rounds (about 15 minutes)
#   bench/compare.sh --quick    # smoke run: small files, fewer sessions, 1 round
#
# Options: --rounds N, --servers ours,vsftpd,... (a subset, in that order), --keep
# (leave the run directory on /dev/shm for inspection).
#
# What it does (see "Performance" in README.md): installs what is missing (vsftpd, iperf3, curl
# and the ftp user with apt-get; pure-ftpd and proftpd unpacked from their Debian
# packages into a private folder, because their packages conflict with vsftpd's;
# pyftpdlib with pip), builds ours in release, starts every server on its own
# loopback port serving a fresh directory on /dev/shm with anonymous upload allowed,
# then runs each workload of target/release/ftp-bench against each server in turn,
# round after round (the order of servers rotates every round), and finally stops
# the servers by their PIDs. Each round also measures the machine's limits: iperf3
# (one stream), a page-cache read and a raw loopback copy. Results (one TSV line per
# measurement) and the table are kept in target/bench/.
set -euo pipefail
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

ROUNDS=3
QUICK=0
KEEP=0
SERVERS="ours,vsftpd,pure-ftpd,proftpd,pyftpdlib,pyftpdlib-threaded"
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) QUICK=1; ROUNDS=1 ;;
        --rounds) ROUNDS="$2"; shift ;;
        --servers) SERVERS="$2"; shift ;;
        --keep) KEEP=1 ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) echo "compare.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done

if [ "$QUICK" = 1 ]; then
    BIG=$((64 << 20)); SESSIONS=8; COUNT=25; CHURN_COUNT=20; IDLE=100; IPERF_SECS=1
    TRICKLE=100; TRICKLE_PROBES=10
else
    BIG=$((1 << 30)); SESSIONS=32; COUNT=100; CHURN_COUNT=50; IDLE=1000; IPERF_SECS=3
    TRICKLE=1000; TRICKLE_PROBES=20
fi
SMALL=4096
DEADLINE=60     # seconds any one workload may take
TIMEOUT=20      # seconds any one operation may take

REPO="$(cd "$(dirname "$0")/.." && pwd)"
PEERS="${SIMPLE_FTP_PEERS:-/var/cache/simple-ftp-bench}"   # pure-ftpd, proftpd unpacked here
OUT="$REPO/target/bench"
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
RUN="/dev/shm/simple-ftp-bench.$$"
BENCH="$REPO/target/release/ftp-bench"
START_TIME=$(date +%s)

# 1,000 idle sessions need more descriptors than a shell's usual soft limit of 1,024
# (pyftpdlib holds them all in one process; ours and ftp-bench raise their own).
ulimit -Sn "$(ulimit -Hn)" 2>/dev/null || true

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------- installs
APT_UPDATED=0
apt_install() {
    [ "$(id -u)" = 0 ] || die "installing $* needs root"
    if [ "$APT_UPDATED" = 0 ]; then
        log "apt-get update"
        apt-get update -qq >/dev/null
        APT_UPDATED=1
    fi
    log "apt-get install $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# A Debian package unpacked into $PEERS (dpkg -x) instead of installed, plus the
# libraries it depends on (those install normally: they conflict with nothing).
unpack_peer() {
    local pkg="$1" tmp deps
    tmp="$(mktemp -d)"
    # apt-get download writes into the current directory.
    ( cd "$tmp" && apt-get download "$pkg" 2>/dev/null >/dev/null ) || die "apt-get download $pkg failed"
    mkdir -p "$PEERS"
    dpkg -x "$tmp"/*.deb "$PEERS"
    deps="$(dpkg-deb -f "$tmp"/*.deb Depends | tr ',' '\n' | sed 's/|.*//; s/(.*)//; s/ //g' | grep '^lib' || true)"
    rm -rf "$tmp"
    local missing=()
    for d in $deps; do
        dpkg -s "$d" >/dev/null 2>&1 || missing+=("$d")
    done
    if [ ${#missing[@]} -gt 0 ]; then apt_install "${missing[@]}"; fi
}

install_peers() {
    local need=()
    command -v vsftpd >/dev/null || [ -x /usr/sbin/vsftpd ] || need+=(vsftpd)
    command -v iperf3 >/dev/null || need+=(iperf3)
    command -v curl >/dev/null || need+=(curl)
    command -v python3 >/dev/null || need+=(python3 python3-pip)
    if [ ${#need[@]} -gt 0 ]; then apt_install "${need[@]}"; fi
    if [ ! -x "$PEERS/usr/sbin/pure-ftpd" ]; then
        [ "$APT_UPDATED" = 1 ] || { apt-get update -qq >/dev/null; APT_UPDATED=1; }
        log "unpacking pure-ftpd into $PEERS"
        unpack_peer pure-ftpd
    fi
    if [ ! -x "$PEERS/usr/sbin/proftpd" ]; then
        [ "$APT_UPDATED" = 1 ] || { apt-get update -qq >/dev/null; APT_UPDATED=1; }
        log "unpacking proftpd into $PEERS"
        unpack_peer proftpd-core
    fi
    if ! python3 -c 'import pyftpdlib' 2>/dev/null; then
        log "pip install pyftpdlib"
        python3 -m pip install -q pyftpdlib || python3 -m pip install -q --break-system-packages pyftpdlib
    fi
    # vsftpd, pure-ftpd and proftpd serve anonymous users as the system user "ftp".
    if ! getent passwd ftp >/dev/null; then
        log "adding the system user ftp"
        useradd --system --home-dir /srv/ftp --shell /usr/sbin/nologin ftp
    fi
}

# ---------------------------------------------------------------- servers
declare -A PID PORT
SERVED=()

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_port() {   # wait until something accepts on 127.0.0.1:$1 (at most 10 s)
    local i
    for i in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    return 1
}

# The directory a server serves: pub/ (mode 0777) holds the test files and takes uploads;
# the root itself is root-owned and not writable, as vsftpd requires.
make_root() {
    local dir="$RUN/root-$1"
    mkdir -p "$dir/pub"
    chmod 0755 "$dir"
    chmod 0777 "$dir/pub"
    ln "$RUN/big.bin" "$dir/pub/big.bin"
    ln "$RUN/small.bin" "$dir/pub/small.bin"
    echo "$dir"
}

start_server() {
    local name="$1" root port pid
    root="$(make_root "$name")"
    case "$name" in
        ours)
            "$REPO/target/release/ftp-server" --port 0 --root "$root" --workers 64 \
                >"$RUN/$name.out" 2>"$RUN/$name.log" &
            pid=$!
            for _ in $(seq 1 100); do
                # The background shell may not have made the file yet.
                port="$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$RUN/$name.out" 2>/dev/null || true)"
                [ -n "$port" ] && break
                sleep 0.1
            done
            ;;
        vsftpd)
            port="$(free_port)"
            mkdir -p "$RUN/vsftpd-empty"
            cat >"$RUN/vsftpd.conf" <<EOF
listen=YES
listen_ipv6=NO
listen_address=127.0.0.1
listen_port=$port
background=NO
anonymous_enable=YES
local_enable=NO
write_enable=YES
anon_upload_enable=YES
anon_mkdir_write_enable=YES
anon_other_write_enable=YES
anon_world_readable_only=NO
anon_umask=022
anon_root=$root
no_anon_password=YES
seccomp_sandbox=NO
secure_chroot_dir=$RUN/vsftpd-empty
max_clients=5000
max_per_ip=0
xferlog_enable=NO
connect_from_port_20=NO
EOF
            vsftpd "$RUN/vsftpd.conf" >"$RUN/$name.log" 2>&1 &
            pid=$!
            ;;
        pure-ftpd)
            # Its anonymous root is always the ftp user's home: bind-mount ours over it
            # in a private mount namespace, so nothing changes outside this process.
            port="$(free_port)"
            local home
            home="$(getent passwd ftp | cut -d: -f6)"
            mkdir -p "$home"
            unshare --mount --propagation private sh -c 'mount --bind "$1" "$2" && shift 2 && exec "$@"' \
                sh "$root" "$home" "$PEERS/usr/sbin/pure-ftpd" -S "127.0.0.1,$port" -e -A -H \
                -c $((IDLE + 100)) -C $((IDLE + 100)) -I 15 -f none \
                >"$RUN/$name.log" 2>&1 &
            pid=$!
            ;;
        proftpd)
            port="$(free_port)"
            cat >"$RUN/proftpd.conf" <<EOF
ServerName "proftpd"
ServerType standalone
DefaultServer on
Port $port
DefaultAddress 127.0.0.1
SocketBindTight on
UseIPv6 off
User nobody
Group nogroup
MaxInstances $((IDLE + 500))
ScoreboardFile $RUN/proftpd.scoreboard
PidFile $RUN/proftpd.pid
DelayEngine off
WtmpLog off
UseReverseDNS off
SystemLog $RUN/proftpd.syslog
TransferLog NONE
RequireValidShell off
TimeoutIdle 600
<Anonymous $root>
  User ftp
  Group nogroup
  UserAlias anonymous ftp
  RequireValidShell off
  AllowOverwrite on
  <Limit WRITE>
    AllowAll
  </Limit>
</Anonymous>
EOF
            "$PEERS/usr/sbin/proftpd" -n -c "$RUN/proftpd.conf" >"$RUN/$name.log" 2>&1 &
            pid=$!
            ;;
        pyftpdlib|pyftpdlib-threaded)
            port="$(free_port)"
            local mode=async
            [ "$name" = pyftpdlib-threaded ] && mode=threaded
            python3 "$REPO/bench/pyftpd.py" "$mode" "$port" "$root" >"$RUN/$name.out" 2>"$RUN/$name.log" &
            pid=$!
            ;;
        *) die "unknown server $name" ;;
    esac
    [ -n "${port:-}" ] && wait_port "$port" || { cat "$RUN/$name.log" >&2 || true; die "$name did not start"; }
    PID[$name]=$pid
    PORT[$name]=$port
    SERVED+=("$name")
    log "$name: PID $pid, port $port, serving $root"
}

stop_servers() {
    local name pid
    for name in "${SERVED[@]}"; do
        pid="${PID[$name]}"
        kill -TERM "$pid" 2>/dev/null || continue
    done
    for name in "${SERVED[@]}"; do
        pid="${PID[$name]}"
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        # pyftpdlib has no SIGTERM handler; a server that ignores TERM gets KILL.
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    SERVED=()
}

cleanup() {
    stop_servers
    # The servers' logs (and ftp-bench's) are small: keep them beside the results.
    mkdir -p "$OUT/logs-$STAMP"
    cp "$RUN"/*.log "$OUT/logs-$STAMP/" 2>/dev/null || true
    if [ "$KEEP" = 0 ]; then rm -rf "$RUN"; else log "kept $RUN"; fi
}

# ---------------------------------------------------------------- workloads
RESULTS=""

# Runs one ftp-bench workload against a server; a crash becomes a FAIL line.
bench() {
    local name="$1" round="$2" workload="$3"; shift 3
    local common=(--port "${PORT[$name]}" --dir pub --served-dir "$RUN/root-$name/pub"
        --local "$RUN/local" --label "$name" --round "$round" --pid "${PID[$name]}"
        --deadline "$DEADLINE" --timeout "$TIMEOUT")
    local before
    before=$(wc -l <"$RESULTS")
    if ! "$BENCH" "$workload" "${common[@]}" "$@" >>"$RESULTS" 2>>"$RUN/ftp-bench.log"; then
        printf '%s\t%s\t%s\tftp-bench\t0\t-\t0\t0\t-\t0\tFAIL\tftp-bench %s exited with an error (see its log)\n' \
            "$name" "$round" "$workload" "$workload" >>"$RESULTS"
    fi
    tail -n +$((before + 1)) "$RESULTS" | cut -f 3-6,11 | tr '\t' ' ' | sed 's/^/    /' >&2
}

# Waits until a forking server has reaped the sessions of the last workload, so the
# next workload does not pay for its clean-up (at most 20 s).
settle() {
    local pid="$1"
    for _ in $(seq 1 200); do
        [ "$(pgrep -c -P "$pid" || true)" -le 2 ] && return 0
        sleep 0.1
    done
}

run_server_round() {
    local name="$1" round="$2"
    log "round $round: $name"
    bench "$name" "$round" retr-large --file big.bin --size "$BIG" --sha256 "$BIG_SHA"
    bench "$name" "$round" curl-retr --file big.bin --size "$BIG" --sha256 "$BIG_SHA"
    bench "$name" "$round" curl-retr --file big.bin --size "$BIG" --sha256 "$BIG_SHA" --to-file
    bench "$name" "$round" stor-large --local-file "$RUN/big.bin" --sha256 "$BIG_SHA"
    bench "$name" "$round" curl-stor --local-file "$RUN/big.bin" --sha256 "$BIG_SHA"
    bench "$name" "$round" retr-small --file small.bin --size "$SMALL" --sha256 "$SMALL_SHA" \
        --sessions "$SESSIONS" --count "$COUNT"
    settle "${PID[$name]}"
    bench "$name" "$round" stor-small --local-file "$RUN/small.bin" --sessions "$SESSIONS" --count "$COUNT"
    settle "${PID[$name]}"
    bench "$name" "$round" churn --sessions "$SESSIONS" --count "$CHURN_COUNT"
    settle "${PID[$name]}"
    bench "$name" "$round" idle --sessions "$IDLE"
    settle "${PID[$name]}"
    # Connections trickling a never-ending line while newcomers are timed (about 10 s).
    bench "$name" "$round" trickle --connections "$TRICKLE" --probes "$TRICKLE_PROBES" \
        --file small.bin --size "$SMALL" --sha256 "$SMALL_SHA"
    settle "${PID[$name]}"
}

machine_round() {
    local round="$1" port out mib
    log "round $round: machine limits"
    printf 'machine\t%s\tloadavg\t/proc/loadavg\t%s\tload\t0\t0\t-\t0\tok\t%s\n' \
        "$round" "$(cut -d' ' -f1 /proc/loadavg)" "$(cat /proc/loadavg)" >>"$RESULTS"
    # TCP connections in TIME-WAIT, machine-wide: thousands of them make bind() to port 0
    # (a passive data port chosen by the kernel) slow; see the README's Performance section.
    printf 'machine\t%s\ttime-wait\tss\t%s\tsockets\t0\t0\t-\t0\tok\tTCP sockets in TIME-WAIT as the round began\n' \
        "$round" "$(ss -tan state time-wait 2>/dev/null | tail -n +2 | wc -l)" >>"$RESULTS"
    port="$(free_port)"
    iperf3 -s -1 -B 127.0.0.1 -p "$port" >/dev/null 2>&1 &
    local ipid=$!
    # The server takes one test only: no probe connection, retry until it listens.
    out=""
    for _ in $(seq 1 50); do
        out="$(iperf3 -c 127.0.0.1 -p "$port" -t "$IPERF_SECS" -J 2>/dev/null)" && break
        out=""
        sleep 0.1
    done
    kill "$ipid" 2>/dev/null || true
    wait "$ipid" 2>/dev/null || true
    mib="$(printf '%s' "$out" | python3 -c 'import json,sys; print("%.3f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/8/1048576))' 2>/dev/null || echo 0)"
    if [ "$mib" != 0 ]; then ok=ok; else ok=FAIL; fi
    printf 'machine\t%s\tloopback-tcp\tiperf3\t%s\tMiB/s\t0\t%s\t-\t0\t%s\tiperf3 -c 127.0.0.1 -t %s, one stream\n' \
        "$round" "$mib" "$IPERF_SECS" "$ok" "$IPERF_SECS" >>"$RESULTS"
    "$BENCH" limits --file "$RUN/big.bin" --scratch "$RUN/local" --round "$round" >>"$RESULTS" 2>>"$RUN/ftp-bench.log" \
        || log "ftp-bench limits failed"
}

# ---------------------------------------------------------------- main
[ "$(uname -s)" = Linux ] || die "Linux only (sendfile, /proc, /dev/shm)"
install_peers
log "building ours (release)"
(cd "$REPO" && cargo build --release --quiet --bin ftp-server --bin ftp-bench)

mkdir -p "$OUT" "$RUN/local"
chmod 0755 "$RUN"
RESULTS="$OUT/results-$STAMP.tsv"
: >"$RESULTS"
trap cleanup EXIT
trap 'exit 130' INT TERM

log "making the test files in $RUN ($BIG and $SMALL bytes)"
BIG_SHA="$("$BENCH" mkfile "$RUN/big.bin" "$BIG")"
SMALL_SHA="$("$BENCH" mkfile "$RUN/small.bin" "$SMALL")"
chmod 0644 "$RUN/big.bin" "$RUN/small.bin"

IFS=, read -r -a ORDER <<<"$SERVERS"
for name in "${ORDER[@]}"; do start_server "$name"; done

for round in $(seq 1 "$ROUNDS"); do
    machine_round "$round"
    # Rotate the order every round, so no server always runs first or last.
    n=${#ORDER[@]}
    for i in $(seq 0 $((n - 1))); do
        run_server_round "${ORDER[$(( (i + round - 1) % n ))]}" "$round"
    done
done
stop_servers

ELAPSED=$(( $(date +%s) - START_TIME ))
TABLE="$OUT/table-$STAMP.md"
{
    echo "Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), Linux $(uname -r)."
    if [ "$QUICK" = 1 ]; then mode="--quick"; else mode="full"; fi
    echo "Run: bench/compare.sh ($mode), $ROUNDS round(s), $(( BIG >> 20 )) MiB large file, $SESSIONS sessions x $COUNT small transfers, $SESSIONS clients x $CHURN_COUNT sessions, $IDLE idle sessions, $TRICKLE trickling connections beside $TRICKLE_PROBES new clients; took $((ELAPSED / 60)) min $((ELAPSED % 60)) s."
    echo "Median (min–max) over rounds. CPU is the server's (user + system, whole process tree)."
    echo "In the ratio column, above 1 is better for rates, below 1 for CPU, memory and latency."
    echo
    "$BENCH" table --ours ours "$RESULTS"
} >"$TABLE"
cat "$TABLE"
log "results: $RESULTS; table: $TABLE"
