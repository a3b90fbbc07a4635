#!/usr/bin/env bash
# Capture overhead benchmark (issue 2, item 9). Not a test: it measures and prints.
#
#   sudo daemon/benches/capture.sh            # from the repository root, as root
#
# 1. builds `cargo build --release` (eBPF object included), makes a throw-away
#    self-signed cert and starts nginx with TLS on 127.0.0.1:$PORT, serving a fixed
#    `return 200` body at / and a 16 KiB static file at /static/16k.txt;
# 2. saturates it with wrk ($THREADS threads, $CONNS connections, $DURATION s) in three
#    set-ups: baseline (nothing attached), qtap (`qtap trace > /dev/null` attached),
#    floor (bpftrace with the same hooks and empty programs);
# 3. drives $RATE requests/s for $RATE_SECONDS s (daemon/benches/rate_client.py, an
#    open-loop python ssl client) with `qtap trace` attached and reports the daemon's
#    CPU and memory, transactions captured vs requests sent, and system.dropped events;
# 4. prints the results as Markdown on stdout (progress goes to stderr).
#
# Only 127.0.0.1 traffic; every step is bounded in time; everything it starts is
# stopped on exit. qtap and bpftrace see the whole host: run it on a quiet machine, and
# read the load averages it prints next to each number.
#
# Environment knobs (defaults in brackets):
#   PORT [18443]  DURATION [15]  THREADS [2]  CONNS [32]  WORKERS [1] (nginx workers)
#   REPEAT [1]    (rounds of baseline/floor/qtap per body; the median is reported)
#   PATHS ["/ /static/16k.txt"]
#   RATE [1000]  RATE_SECONDS [20]  RATE_CONNS [16]
#   QUIET_WAIT [600]: before each run, wait up to this many seconds until no other
#     tracing eBPF program (another qtap, bpftrace, ...) is loaded; runs that still see
#     one are measured again up to RETRIES [2] times, then flagged in the table. QUIET_LOAD [off]: also wait for load1 below this.
#   SAT_COUNT=1: during the saturation runs, count the transactions qtap prints (and
#     system.dropped) instead of sending them to /dev/null; costs throughput (a pipe
#     reader wakes per line)
#   NO_BUILD=1 (skip cargo build)   KEEP=1 (keep the work directory)
#   QTAP=path (measure that qtap binary instead of target/release/qtap, e.g. one built
#     from an older commit for a before/after comparison; implies NO_BUILD=1)
#   PERF=1 (perf record -a -g for 10 s during the first floor and the first qtap run;
#           reports by process and symbol go to the work directory, which is then kept)
#   BPF_STATS=1 (one extra qtap run per body, not in the medians, with the kernel's
#           kernel.bpf_stats_enabled on: run count and average ns of each of qtap's
#           programs, and their total CPU time; perf on this VM lands kernel samples on
#           irq-enable points, so this is how the programs' own cost is seen)
set -euo pipefail

PORT=${PORT:-18443}
DURATION=${DURATION:-15}
THREADS=${THREADS:-2}
CONNS=${CONNS:-32}
WORKERS=${WORKERS:-1}
REPEAT=${REPEAT:-1}
PATHS=${PATHS:-"/ /static/16k.txt"}
RATE=${RATE:-1000}
RATE_SECONDS=${RATE_SECONDS:-20}
RATE_CONNS=${RATE_CONNS:-16}
PERF=${PERF:-0}
BPF_STATS=${BPF_STATS:-0}

ROOT=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../.." && pwd)
QTAP=${QTAP:-$ROOT/target/release/qtap}
HZ=$(getconf CLK_TCK)

QUIET_WAIT=${QUIET_WAIT:-600}
RETRIES=${RETRIES:-2}
SAT_MODE=$([[ ${SAT_COUNT:-0} == 1 ]] && echo count || echo devnull)
QUIET_LOAD=${QUIET_LOAD:-}
FOREIGN=0

log() { printf '[bench %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
load1() { cut -d' ' -f1 /proc/loadavg; }

[[ $EUID -eq 0 ]] || die "run as root (qtap and bpftrace attach eBPF programs): sudo $0"
for t in cargo nginx wrk bpftrace bpftool openssl curl mawk /usr/bin/python3; do
    command -v "$t" >/dev/null || die "$t not found (Debian: nginx-light wrk bpftrace bpftool openssl curl mawk python3)"
done

# ---------------------------------------------------------------- cleanup
PIDS=()
WORK=""
cleanup() {
    local p
    for p in "${PIDS[@]}"; do
        kill -INT "$p" 2>/dev/null || true
    done
    sleep 0.5
    for p in "${PIDS[@]}"; do
        kill -KILL "$p" 2>/dev/null || true
    done
    if [[ -n $WORK && -f $WORK/nginx.pid ]]; then
        kill -TERM "$(cat "$WORK/nginx.pid")" 2>/dev/null || true
    fi
    if [[ -n $WORK && ${KEEP:-0} != 1 && $PERF != 1 ]]; then
        rm -rf "$WORK"
    elif [[ -n $WORK ]]; then
        log "kept $WORK"
    fi
}
trap cleanup EXIT
trap 'log "interrupted (SIGINT)"; exit 130' INT
trap 'log "terminated (SIGTERM)"; exit 143' TERM
forget() { # forget PID: drop it from the cleanup list
    local p keep=()
    for p in "${PIDS[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done
    PIDS=("${keep[@]}")
}
stop() { # stop PID [SIGNAL]: signal, wait up to 10 s, then KILL
    local pid=$1 sig=${2:-INT} i
    kill -"$sig" "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    forget "$pid"
}

# ---------------------------------------------------------------- build
if [[ ${NO_BUILD:-0} != 1 && $QTAP == "$ROOT/target/release/qtap" ]]; then
    log "cargo build --release"
    (cd "$ROOT" && timeout 1800 cargo build --release) >&2
fi
[[ -x $QTAP ]] || die "$QTAP missing (build first)"

# ---------------------------------------------------------------- nginx
WORK=$(mktemp -d /tmp/qtap-bench.XXXXXX)
chmod 755 "$WORK" # nginx workers run as nobody
mkdir -p "$WORK/static"
head -c 16384 /dev/zero | tr '\0' 'q' >"$WORK/static/16k.txt"
chmod -R a+rX "$WORK/static"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$WORK/key.pem" -out "$WORK/cert.pem" -days 2 -subj /CN=127.0.0.1 2>/dev/null
cat >"$WORK/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes $WORKERS;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $WORK; proxy_temp_path $WORK; fastcgi_temp_path $WORK;
    uwsgi_temp_path $WORK; scgi_temp_path $WORK;
    keepalive_requests 10000000;
    default_type text/plain;
    server {
        listen 127.0.0.1:$PORT ssl;
        ssl_certificate $WORK/cert.pem;
        ssl_certificate_key $WORK/key.pem;
        location = / { return 200 "hello from the qtap capture benchmark\n"; }
        location /static/ { root $WORK; }
    }
}
EOF
nginx -p "$WORK" -c "$WORK/nginx.conf" >"$WORK/nginx.out" 2>&1 &
PIDS+=($!)
for ((i = 0; i < 50; i++)); do
    curl -skf --max-time 2 "https://127.0.0.1:$PORT/" >/dev/null 2>&1 && break
    sleep 0.2
done
curl -skf --max-time 2 "https://127.0.0.1:$PORT/static/16k.txt" -o /dev/null ||
    die "nginx did not come up on 127.0.0.1:$PORT: $(cat "$WORK/nginx-error.log" "$WORK/nginx.out" 2>/dev/null)"
LIBSSL=$(readlink -f "$(ldd "$(command -v nginx)" | awk '/libssl/ {print $3}')")
[[ -f $LIBSSL ]] || die "cannot find nginx's libssl"
log "nginx up on 127.0.0.1:$PORT (libssl $LIBSSL), work dir $WORK"

# ---------------------------------------------------------------- qtap
# start_qtap NAME [count]: starts `qtap trace`; sets QPID (and APID with `count`).
# - default: stdout to /dev/null, as a user would run it. Its first line cannot be seen
#   there, so readiness is the "probes attached" line qtap logs on stderr at the moment
#   it publishes system.connected (reading stdout through a pipe, even with
#   `cat >/dev/null`, cost 0-20 % throughput in 3 noisy pairs here: a reader wake-up per
#   line).
# - count: stdout through a fifo; bash reads and checks the first line
#   (system.connected), then mawk counts this benchmark's transactions per direction and
#   keeps the system.dropped lines.
start_qtap() {
    local name=$1 mode=${2:-devnull} i
    rm -f "$WORK/$name".*
    APID=""
    if [[ $mode != count ]]; then
        "$QTAP" trace >/dev/null 2>"$WORK/$name.err" &
        QPID=$!
        PIDS+=("$QPID")
        for ((i = 0; i < 600; i++)); do
            grep -q 'probes attached' "$WORK/$name.err" && break
            kill -0 "$QPID" 2>/dev/null || die "qtap exited: $(cat "$WORK/$name.err")"
            sleep 0.1
        done
        grep -q 'probes attached' "$WORK/$name.err" || die "qtap did not attach: $(cat "$WORK/$name.err")"
        sleep 1 # let the attach-time /proc scan settle
        return
    fi
    mkfifo "$WORK/$name.fifo"
    "$QTAP" trace >"$WORK/$name.fifo" 2>"$WORK/$name.err" &
    QPID=$!
    PIDS+=("$QPID")
    # the first line is read by bash (mawk fills its whole input buffer before it
    # looks at a line from a pipe)
    {
        IFS= read -r line || true
        printf '%s\n' "$line" >"$WORK/$name.first"
        exec mawk -v drops="$WORK/$name.dropped" \
            -v counts="$WORK/$name.counts" -v url="\"url\":\"https://127.0.0.1:$PORT/" '
        index($0, "\"topic\":\"request.http_transaction\"") {
            n++
            if (index($0, url)) {
                if (index($0, "\"direction\":\"ingress\"")) ing++; else eg++
            }
            next
        }
        index($0, "\"topic\":\"system.dropped\"") { print > drops }
        END { printf "all=%d ingress=%d egress=%d\n", n, ing, eg > counts }'
    } <"$WORK/$name.fifo" &
    APID=$!
    PIDS+=("$APID")
    for ((i = 0; i < 600; i++)); do
        [[ -s $WORK/$name.first ]] && break
        kill -0 "$QPID" 2>/dev/null || die "qtap exited: $(cat "$WORK/$name.err")"
        sleep 0.1
    done
    grep -q '"topic":"system.connected"' "$WORK/$name.first" ||
        die "qtap's first line is not system.connected: $(head -c 300 "$WORK/$name.first")"
    grep -q '"status":"failed' "$WORK/$name.first" &&
        log "warning: system.connected lists a failed probe: $(head -c 600 "$WORK/$name.first")"
    sleep 1 # let the attach-time /proc scan settle
}
stop_qtap() { # after the load: give the tail 2 s to drain, then Ctrl-C
    sleep 2
    stop "$QPID" INT
    if [[ -n $APID ]]; then
        wait "$APID" 2>/dev/null || true
        forget "$APID"
    fi
}
# dropped_summary NAME: "events/bytes by reason" from the system.dropped lines
dropped_summary() {
    local f=$WORK/$1.dropped
    if [[ ! -s $f ]]; then
        echo "0"
        return
    fi
    mawk '{
        e = $0; sub(/.*"events":/, "", e); sub(/[,}].*/, "", e)
        b = $0; sub(/.*"bytes":/, "", b); sub(/[,}].*/, "", b)
        r = $0; sub(/.*"reason":"/, "", r); sub(/".*/, "", r)
        ev[r] += e; by[r] += b; lines++
    } END {
        s = ""
        for (r in ev) s = s sprintf("%s%s: %d events, %d bytes", (s == "" ? "" : "; "), r, ev[r], by[r])
        printf "%d lines (%s)", lines, s
    }' "$f"
}
# tracing eBPF programs loaded right now (ours included when they run)
foreign_progs() {
    bpftool prog show 2>/dev/null |
        awk '/^[0-9]+: (tracepoint|kprobe|raw_tracepoint|tracing|perf_event) / {n++} END {print n + 0}'
}
# wait_quiet: before starting a run (ours detached), wait for a quiet machine
wait_quiet() {
    local waited=0 n l
    while :; do
        n=$(foreign_progs)
        l=$(load1)
        if [[ $n == 0 ]] && { [[ -z $QUIET_LOAD ]] || awk -v l="$l" -v m="$QUIET_LOAD" 'BEGIN {exit !(l < m)}'; }; then
            FOREIGN=0
            return
        fi
        if ((waited >= QUIET_WAIT)); then
            log "still $n foreign tracing eBPF programs, load $l: measuring anyway (flagged)"
            FOREIGN=$n
            return
        fi
        ((waited % 60 == 0)) && log "waiting for a quiet machine: $n foreign tracing eBPF programs, load $l"
        sleep 5
        waited=$((waited + 5))
    done
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
vm_kib() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

# ---------------------------------------------------------------- floor
FLOOR_TRACEPOINTS="read recvfrom readv recvmsg write sendto writev sendmsg sendfile64 socket connect accept accept4"
write_floor_script() {
    local f=$WORK/floor.bt s sep=""
    : >"$f"
    for s in SSL_read SSL_write SSL_read_ex SSL_write_ex; do
        printf '%suprobe:%s:%s,uretprobe:%s:%s' "$sep" "$LIBSSL" "$s" "$LIBSSL" "$s" >>"$f"
        sep=","
    done
    printf ' {}\n' >>"$f"
    sep=""
    for s in $FLOOR_TRACEPOINTS; do
        printf '%stracepoint:syscalls:sys_enter_%s,tracepoint:syscalls:sys_exit_%s' "$sep" "$s" "$s" >>"$f"
        sep=","
    done
    printf ',tracepoint:syscalls:sys_enter_close' >>"$f"
    printf ',tracepoint:sock:inet_sock_set_state' >>"$f"
    printf ',tracepoint:sched:sched_process_exec,tracepoint:sched:sched_process_exit {}\n' >>"$f"
}
start_floor() {
    local i
    rm -f "$WORK/floor.out"
    bpftrace "$WORK/floor.bt" >"$WORK/floor.out" 2>"$WORK/floor.err" &
    FPID=$!
    PIDS+=("$FPID")
    for ((i = 0; i < 600; i++)); do
        grep -q '^Attaching' "$WORK/floor.out" 2>/dev/null && break
        kill -0 "$FPID" 2>/dev/null || die "bpftrace exited: $(cat "$WORK/floor.err")"
        sleep 0.1
    done
    sleep 1
}

# ---------------------------------------------------------------- wrk
# run_wrk PATH TAG: one wrk run; sets LINE to "tag path rps requests errors load1 qtap_cpu%"
run_wrk() {
    local path=$1 tag=$2 out=$WORK/wrk.out rps reqs errs l0 l1 c0=0 c1=0 cpu="-" perfpid=""
    l0=$(load1)
    if [[ $tag == qtap ]]; then c0=$(cpu_ticks "$QPID"); fi
    if [[ $tag != baseline && $PERF == 1 && ! -e $WORK/perf-$tag.data ]]; then
        perf record -a -g -F 499 -o "$WORK/perf-$tag.data" -- sleep 10 >/dev/null 2>&1 &
        perfpid=$!
        PIDS+=("$perfpid")
    fi
    timeout $((DURATION + 30)) wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" \
        "https://127.0.0.1:$PORT$path" >"$out" 2>&1 || true
    if [[ -n $perfpid ]]; then
        wait "$perfpid" 2>/dev/null || true
        forget "$perfpid"
    fi
    if [[ $tag == qtap ]]; then
        c1=$(cpu_ticks "$QPID")
        cpu=$(awk -v a="$c0" -v b="$c1" -v hz="$HZ" -v d="$DURATION" 'BEGIN {printf "%.0f", (b - a) / hz / d * 100}')
    fi
    l1=$(load1)
    rps=$(awk '/^Requests\/sec:/ {print $2}' "$out")
    reqs=$(awk '/requests in/ {print $1}' "$out")
    errs=$(awk '/Non-2xx|Socket errors/ {printf "%s ", $0}' "$out")
    [[ -n $rps ]] || die "wrk failed: $(cat "$out")"
    log "$tag $path: $rps req/s ($reqs requests; load $l0 -> $l1) ${errs}"
    LINE="$tag $path $rps $reqs $([[ -n $errs ]] && echo 1 || echo 0) $l0/$l1 $cpu"
}
# measure PATH TAG NAME: wait for a quiet machine, attach (floor: bpftrace, qtap: qtap
# trace into NAME.*), run wrk, detach. A run during which another tracing eBPF program
# was loaded or appeared is measured again (RETRIES times), then kept but flagged.
measure() {
    local path=$1 tag=$2 name=$3 try ours post contam
    for ((try = 0; try <= RETRIES; try++)); do
        wait_quiet
        case $tag in
        floor) start_floor ;;
        qtap) start_qtap "$name" "$SAT_MODE" ;;
        esac
        ours=$(foreign_progs)
        run_wrk "$path" "$tag"
        post=$(foreign_progs)
        case $tag in
        floor) stop "$FPID" INT ;;
        qtap) stop_qtap ;;
        esac
        contam=$((FOREIGN + (post > ours ? post - ours : ours - post)))
        if ((contam == 0 || try == RETRIES)); then
            echo "$LINE $contam" >>"$WORK/results"
            return
        fi
        log "other tracing eBPF programs were loaded during the run; measuring again"
        sleep 2
    done
}
median() { sort -g | awk '{v[NR] = $1} END {if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

# ---------------------------------------------------------------- machine
START_LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
KERNEL=$(uname -r)
NPROC=$(nproc)
CPU_MODEL=$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)
COMMIT=$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
DIRTY=$(cd "$ROOT" && git status --porcelain --untracked-files=no 2>/dev/null | grep -q . && echo "+dirty" || true)

# ---------------------------------------------------------------- saturation
write_floor_script
: >"$WORK/results"
declare -A CAPTURED
NSAT=0
for path in $PATHS; do
    log "warm-up $path"
    timeout 20 wrk -t"$THREADS" -c"$CONNS" -d3s "https://127.0.0.1:$PORT$path" >/dev/null 2>&1 || true
    for ((r = 1; r <= REPEAT; r++)); do
        measure "$path" baseline ""
        sleep 2
        measure "$path" floor ""
        sleep 2
        name=sat$((++NSAT))
        measure "$path" qtap "$name"
        if [[ $SAT_MODE == count ]]; then
            CAPTURED["$path $r"]="$(cat "$WORK/$name.counts") dropped=$(dropped_summary "$name")"
        fi
        sleep 2
    done
done

# ---------------------------------------------------------------- kernel programs' cost
# bpf_prog_stats PATH: one qtap run under wrk with kernel.bpf_stats_enabled; appends a
# Markdown table (program, runs, average ns, total ms) to $WORK/kernel-stats.md
bpf_prog_stats() {
    local path=$1 before=$WORK/bpfstats-before.json after=$WORK/bpfstats-after.json
    wait_quiet
    start_qtap bpfstats
    sysctl -qw kernel.bpf_stats_enabled=1
    bpftool -j prog show >"$before"
    run_wrk "$path" bpfstats
    bpftool -j prog show >"$after"
    sysctl -qw kernel.bpf_stats_enabled=0
    stop_qtap
    python3 - "$before" "$after" "$path" "$DURATION" "${LINE#* * }" >>"$WORK/kernel-stats.md" <<'PY'
import json, sys
before = {p["id"]: p for p in json.load(open(sys.argv[1]))}
after = json.load(open(sys.argv[2]))
path, secs, rest = sys.argv[3], float(sys.argv[4]), sys.argv[5].split()
rows, total = [], 0
for p in after:
    b = before.get(p["id"])
    if b is None:
        continue
    dn = p.get("run_time_ns", 0) - b.get("run_time_ns", 0)
    dc = p.get("run_cnt", 0) - b.get("run_cnt", 0)
    if dc <= 0:
        continue
    total += dn
    rows.append((dn, dc, p.get("name", "?")))
rows.sort(reverse=True)
reqs = float(rest[1]) if len(rest) > 1 else 0
print(f"\n#### `{path}` ({rest[0]} req/s with stats on)\n")
print("| program | runs | avg ns | total ms |")
print("|---|---:|---:|---:|")
for dn, dc, name in rows[:12]:
    print(f"| {name} | {dc} | {dn / dc:.0f} | {dn / 1e6:.1f} |")
per_req = f"; {total / reqs / 1000:.2f} µs per request" if reqs else ""
print(f"\nAll programs: {total / 1e9:.2f} s of CPU in {secs:.0f} s "
      f"({total / 1e9 / secs * 100:.1f} % of one core{per_req}).")
PY
}
if [[ $BPF_STATS == 1 ]]; then
    : >"$WORK/kernel-stats.md"
    for path in $PATHS; do
        log "kernel program cost (bpf_stats) $path"
        bpf_prog_stats "$path"
    done
fi

# ---------------------------------------------------------------- fixed rate
log "fixed rate: $RATE req/s for $RATE_SECONDS s with qtap attached"
for ((try = 0; try <= RETRIES; try++)); do
    wait_quiet
    RATE_FOREIGN=$FOREIGN
    start_qtap rate count
    RATE_OURS=$(foreign_progs)
    RSS_IDLE=$(vm_kib "$QPID" VmRSS)
    RL0=$(load1)
    C0=$(cpu_ticks "$QPID")
    T0=$(date +%s.%N)
    timeout $((RATE_SECONDS + 60)) /usr/bin/python3 "$ROOT/daemon/benches/rate_client.py" \
        --port "$PORT" --rate "$RATE" --duration "$RATE_SECONDS" --conns "$RATE_CONNS" \
        >"$WORK/rate.json" 2>"$WORK/rate.err" || die "rate client failed: $(cat "$WORK/rate.err")"
    T1=$(date +%s.%N)
    C1=$(cpu_ticks "$QPID")
    RSS_END=$(vm_kib "$QPID" VmRSS)
    HWM=$(vm_kib "$QPID" VmHWM)
    RL1=$(load1)
    RATE_POST=$(foreign_progs)
    RATE_FOREIGN=$((RATE_FOREIGN + (RATE_POST > RATE_OURS ? RATE_POST - RATE_OURS : RATE_OURS - RATE_POST)))
    stop_qtap
    if ((RATE_FOREIGN == 0 || try == RETRIES)); then
        break
    fi
    log "other tracing eBPF programs were loaded during the run; measuring again"
done
RATE_JSON=$(cat "$WORK/rate.json")
jget() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$RATE_JSON" "$1"; }
OK=$(jget ok)
SENT=$(jget sent)
ACH=$(jget achieved_rps)
read -r _ ING EG < <(sed 's/[a-z]*=//g' "$WORK/rate.counts")
CPU_PCT=$(awk -v a="$C0" -v b="$C1" -v t0="$T0" -v t1="$T1" -v hz="$HZ" 'BEGIN {printf "%.1f", (b - a) / hz / (t1 - t0) * 100}')
CPU_PER_REQ=$(awk -v a="$C0" -v b="$C1" -v hz="$HZ" -v n="$OK" 'BEGIN {if (n > 0) printf "%.0f", (b - a) / hz / n * 1e6; else print "-"}')

# ---------------------------------------------------------------- report
END_LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
cat <<EOF
## qtap capture benchmark — $(date -u +%Y-%m-%dT%H:%MZ)

- machine: $NPROC × $CPU_MODEL, kernel $KERNEL; load average at start $START_LOAD, at end $END_LOAD
- qtap: $([[ $QTAP == "$ROOT/target/release/qtap" ]] && echo "commit $COMMIT$DIRTY, \`target/release/qtap trace\`" || echo "\`$QTAP trace\` (QTAP=)") (saturation: $([[ $SAT_MODE == count ]] && echo "SAT_COUNT=1, stdout counted by mawk through a fifo" || echo "\`> /dev/null\`, ready when it logs \"probes attached\""); fixed rate: stdout counted by mawk through a fifo, ready at its system.connected line)
- nginx $(nginx -v 2>&1 | sed 's/.*\///'), $WORKERS worker(s), TLS (ECDSA P-256) on 127.0.0.1:$PORT, access_log off; libssl $LIBSSL
- load: \`wrk -t$THREADS -c$CONNS -d${DURATION}s\`, keep-alive; $REPEAT round(s) of baseline → floor → qtap per body, median shown
- floor: bpftrace, empty programs (\`{}\`) on uprobe+uretprobe of SSL_read, SSL_write, SSL_read_ex, SSL_write_ex in that libssl and the tracepoints qtap attaches (sys_enter/exit of ${FLOOR_TRACEPOINTS// /, }; sys_enter_close; sock:inet_sock_set_state; sched_process_exec/exit)

### Throughput at saturation (requests/s)

Medians over the undisturbed runs; the last column pairs each qtap run with the floor
run of the same round (a minute apart, so slower drifts in the machine's load cancel).

| body | baseline | floor (empty hooks) | qtap trace | floor / baseline | qtap / baseline | **qtap / floor** (aim ≥ 0.85) | qtap / floor, per round |
|---|---:|---:|---:|---:|---:|---:|---:|
EOF
# clean PATH TAG: requests/s of the runs no other tracing eBPF program disturbed (all
# runs if none was clean)
clean() {
    local v
    v=$(awk -v p="$1" -v t="$2" '$1 == t && $2 == p && $8 == 0 {print $3}' "$WORK/results")
    [[ -n $v ]] || v=$(awk -v p="$1" -v t="$2" '$1 == t && $2 == p {print $3}' "$WORK/results")
    echo "$v"
}
for path in $PATHS; do
    b=$(clean "$path" baseline | median)
    f=$(clean "$path" floor | median)
    q=$(clean "$path" qtap | median)
    # the same ratio taken within each round (runs a minute apart), then the median
    pr=$(awk -v p="$path" '$2 == p && $1 == "floor" {f[++nf] = $3; cf[nf] = $8}
        $2 == p && $1 == "qtap" {q[++nq] = $3; cq[nq] = $8}
        END {for (i = 1; i <= nq; i++) if (cf[i] == 0 && cq[i] == 0) print q[i] / f[i]}' "$WORK/results")
    pr=$(median <<<"$pr")
    body=$([[ $path == / ]] && echo "\`return 200\` (39 B) at /" || echo "16 KiB file at $path")
    awk -v body="$body" -v b="$b" -v f="$f" -v q="$q" -v pr="$pr" 'BEGIN {
        printf "| %s | %.0f | %.0f | %.0f | %.2f | %.2f | **%.2f** | %s |\n", body, b, f, q, f / b, q / b, q / f,
            (pr == "nan" ? "-" : sprintf("%.2f", pr)) }'
done
cat <<EOF

Every run (load average = 1-min value before/after the run; qtap CPU = the daemon's
utime+stime over the run, in % of one core; foreign = other tracing eBPF programs
loaded at the start or appearing during the run, should be 0):

| set-up | path | requests/s | requests | errors | load | qtap CPU % | foreign |
|---|---|---:|---:|---|---|---:|---:|
EOF
awk '{printf "| %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, ($5 == "0" ? "none" : "yes (see wrk)"), $6, $7, $8}' "$WORK/results"
if [[ $SAT_MODE == count ]]; then
    cat <<EOF

Transactions qtap printed during the saturation runs (this benchmark's only; wrk's
own count excludes requests in flight when it stops; both sides of each exchange are
captured: nginx = ingress, wrk = egress):

| path | round | wrk requests | captured ingress | captured egress | system.dropped |
|---|---:|---:|---:|---:|---|
EOF
for path in $PATHS; do
    for ((r = 1; r <= REPEAT; r++)); do
        reqs=$(awk -v p="$path" '$1 == "qtap" && $2 == p {print $4}' "$WORK/results" | sed -n "${r}p")
        c=${CAPTURED["$path $r"]}
        ing=$(sed 's/.*ingress=\([0-9]*\).*/\1/' <<<"$c")
        eg=$(sed 's/.*egress=\([0-9]*\).*/\1/' <<<"$c")
        dr=$(sed 's/.*dropped=//' <<<"$c")
        echo "| $path | $r | $reqs | $ing | $eg | $dr |"
    done
done
fi
cat <<EOF

### Daemon at a fixed $RATE requests/s (\`return 200\` body, $RATE_SECONDS s, $RATE_CONNS keep-alive connections)

| | |
|---|---|
| load generator | daemon/benches/rate_client.py (python3 asyncio + ssl, open loop) |
| requests sent / answered 200 | $SENT / $OK (achieved $ACH req/s; $(jget p50_ms) ms p50, $(jget p99_ms) ms p99, max lateness $(jget max_late_ms) ms) |
| qtap CPU | $CPU_PCT % of one core ($CPU_PER_REQ µs of CPU per request, both sides captured) |
| qtap RSS | idle after attach $((RSS_IDLE / 1024)) MiB; at the end $((RSS_END / 1024)) MiB; peak (VmHWM) $((HWM / 1024)) MiB |
| transactions captured, nginx side (ingress) | $ING — lost: $((OK - ING)) |
| transactions captured, client side (egress) | $EG — lost: $((OK - EG)) |
| system.dropped | $(dropped_summary rate) |
| load average before / after | $RL0 / $RL1 |
| other tracing eBPF programs loaded at start or during the run | $RATE_FOREIGN |
EOF
if [[ $BPF_STATS == 1 && -s $WORK/kernel-stats.md ]]; then
    printf '\n### Kernel programs under saturation (`BPF_STATS=1`)\n\nOne extra `qtap trace` run per body with `kernel.bpf_stats_enabled=1` (the counting itself costs\nsome throughput; that run is not in the medians above):\n'
    cat "$WORK/kernel-stats.md"
fi
if [[ $PERF == 1 ]]; then
    for t in floor qtap; do
        [[ -e $WORK/perf-$t.data ]] || continue
        {
            perf report -i "$WORK/perf-$t.data" --no-children --sort comm --stdio -g none 2>/dev/null
            perf report -i "$WORK/perf-$t.data" --no-children --sort comm,dso,sym --stdio -g none \
                --percent-limit 0.3 2>/dev/null
        } | grep -v '^#' | grep -v '^$' >"$WORK/perf-$t.txt" || true
    done
    printf '\nperf profiles (whole machine, 10 s of the first floor and qtap runs): %s\n' \
        "$WORK/perf-floor.txt $WORK/perf-qtap.txt"
fi
