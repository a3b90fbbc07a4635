#!/bin/bash
# Capture smoke test, run INSIDE a guest kernel (virtme-ng) as root:
#   capture-smoke.sh QTAP_BINARY
# 1. counts the BPF programs loaded before anything runs,
# 2. starts `qtap trace` (probes attach on the first client: the trace itself),
# 3. makes a plaintext HTTP request (python http.server + curl) and an OpenSSL TLS request
#    (python ssl server + curl -k), both with an Authorization header,
# 4. checks both transactions reached the trace with their headers,
# 5. stops the trace and checks the probes are gone again.
# Prints one `CHECK name ok|FAIL detail` line per check and exits non-zero on any FAIL.
set -u
QTAP=${1:?usage: capture-smoke.sh QTAP_BINARY}
HERE=$(cd "$(dirname "$0")" && pwd)
PY=/usr/bin/python3 # Debian's python: its ssl module uses the system libssl
W=$(mktemp -d /tmp/qtap-smoke.XXXXXX)
fails=0
pids=()

check() { # name ok|FAIL [detail]
  echo "CHECK $1 $2${3:+ $3}"
  [ "$2" = ok ] || fails=$((fails + 1))
}
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
}
trap cleanup EXIT

# Tracing programs only (tracepoints, uprobes): systemd's own cgroup programs (e.g. the
# device filter it attaches for PrivateDevices=) come and go with the units.
progs() { bpftool prog show 2>/dev/null | grep -cE '^[0-9]+: (tracepoint|kprobe|raw_tracepoint|tracing|perf_event) '; }
wait_for() { # seconds command...
  local t=$(($1 * 10))
  shift
  while [ $t -gt 0 ]; do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.1
    t=$((t - 1))
  done
  return 1
}

echo "kernel $(uname -r) (guest up $(cut -d" " -f1 /proc/uptime) s)"
mountpoint -q /sys/kernel/tracing || mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
ip link set lo up 2>/dev/null

# Servers first, so their libssl is mapped when the probes attach.
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost \
  -keyout "$W/key.pem" -out "$W/cert.pem" >/dev/null 2>&1
mkdir -p "$W/www" && echo "plain file" >"$W/www/plain-check"
(cd "$W/www" && exec $PY -m http.server 28080 --bind 127.0.0.1) >"$W/http.log" 2>&1 &
pids+=($!)
$PY "$HERE/tls-server.py" 127.0.0.1 28443 "$W/cert.pem" "$W/key.pem" >"$W/https.log" 2>&1 &
pids+=($!)
wait_for 20 curl -s -o /dev/null http://127.0.0.1:28080/ || check servers FAIL "http.server did not start"
wait_for 20 curl -sk -o /dev/null https://127.0.0.1:28443/ || check servers FAIL "TLS server did not start"

before=$(progs)
"$QTAP" trace >"$W/trace.ndjson" 2>"$W/trace.err" &
qpid=$!
pids+=($qpid)
if wait_for 60 grep -q '"topic":"system.connected"' "$W/trace.ndjson"; then
  check trace-started ok
else
  check trace-started FAIL "no system.connected within 60 s"
  sed 's/^/  trace: /' "$W/trace.err" | tail -20
fi
during=$(progs)
if [ "$during" -gt "$before" ]; then
  check probes-attached ok "bpf programs ${before} -> ${during}"
else
  check probes-attached FAIL "bpf programs ${before} -> ${during}"
fi
grep -o '"probes":\[[^]]*\]' "$W/trace.ndjson" | head -1 | sed 's/^/  /'

code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer plain-secret-5150' \
  'http://127.0.0.1:28080/plain-check?x=1')
echo "  curl http: $code"
code=$(curl -sk -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer tls-secret-4242' \
  'https://127.0.0.1:28443/tls-check?y=2')
echo "  curl https: $code"

# Both transactions, with their Authorization headers, within 30 s.
verify() {
  $PY - "$W/trace.ndjson" <<'EOF'
import json, sys
want = {"/plain-check?x=1": ("Bearer plain-secret-5150", False),
        "/tls-check?y=2": ("Bearer tls-secret-4242", True)}
seen = {}
for line in open(sys.argv[1], errors="replace"):
    try:
        ev = json.loads(line)
    except ValueError:
        continue
    if ev.get("topic") != "request.http_transaction":
        continue
    t = ev["data"]["transaction"]
    path = t["request"]["path"]
    if path not in want:
        continue
    auth = [v for k, v in t["request"]["headers"] if k.lower() == "authorization"]
    status = (t.get("response") or {}).get("status")
    seen.setdefault(path, []).append((auth, t.get("tls"), status, t.get("direction")))
ok = True
for path, (auth, tls) in want.items():
    rows = seen.get(path, [])
    good = [r for r in rows if auth in r[0] and r[1] == tls and r[2] == 200]
    print(f"{path}: {len(rows)} seen, {len(good)} with header+tls={tls}+200, directions {sorted(set(r[3] for r in rows))}")
    ok &= bool(good)
sys.exit(0 if ok else 1)
EOF
}
if wait_for 30 verify; then
  verify | sed 's/^/  /'
  check plaintext-and-tls-captured ok
else
  verify | sed 's/^/  /'
  check plaintext-and-tls-captured FAIL
  grep -c . "$W/trace.ndjson" | sed 's/^/  trace lines: /'
  tail -5 "$W/trace.err" | sed 's/^/  trace: /'
fi

kill -INT "$qpid"
if wait_for 20 sh -c "! kill -0 $qpid"; then
  check trace-stopped ok
else
  check trace-stopped FAIL "still running 20 s after SIGINT"
  kill -9 "$qpid"
fi
# Programs are freed once their last reference (fd, link) goes: give the kernel a moment.
t=100
while [ $t -gt 0 ] && [ "$(progs)" -gt "$before" ]; do sleep 0.1; t=$((t - 1)); done
after=$(progs)
if [ "$after" -le "$before" ]; then
  check probes-detached ok "bpf programs ${before} -> ${during} -> ${after}"
else
  check probes-detached FAIL "bpf programs ${before} -> ${during} -> ${after}"
fi

echo "guest up $(cut -d" " -f1 /proc/uptime) s"
[ $fails -eq 0 ] && echo "SMOKE PASS" || echo "SMOKE FAIL ($fails)"
exit $((fails > 0))
