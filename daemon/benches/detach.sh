#!/bin/bash
# Usage (root, repository root): daemon/benches/detach.sh [path/to/qtap]
# Starts `qtap trace`, waits for system.connected (probes attached), sends SIGTERM and
# prints how long the daemon took to detach everything and exit. Three rounds.
bin=${1:-target/release/qtap}
for i in 1 2 3; do
  out=$(mktemp); err=$(mktemp)
  $bin trace --topics system.connected > $out 2>$err &
  p=$!
  for _ in $(seq 300); do grep -q system.connected $out && break; sleep 0.1; done
  n=$(grep -o '"status":"attached' $out | wc -l)
  t0=$(date +%s.%N); kill -TERM $p; wait $p; t1=$(date +%s.%N)
  echo "run $i: $n probe entries attached; exit after SIGTERM: $(echo "$t1 - $t0" | bc) s; load $(cut -d' ' -f1 /proc/loadavg)"
  rm -f $out $err
done
