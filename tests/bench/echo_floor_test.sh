#!/bin/bash
# Usage: echo_floor_test.sh SERVER ECHO_LOAD
# Starts bench's io_uring floor echo server on an ephemeral port, drives it
# with examples/echo_load in both modes (every byte echoed is verified by the
# client), then stops it with SIGTERM and expects exit status 0.
set -u
server=$1
load=$2
dir=$(mktemp -d "${TEST_TMPDIR:-/tmp}/echo_floor.XXXXXX")
port_file=$dir/port

"$server" --port=0 --port_file="$port_file" --threads=2 2>"$dir/server.log" &
pid=$!
for _ in $(seq 1 200); do
  [[ -s $port_file ]] && break
  if ! kill -0 "$pid" 2>/dev/null; then
    wait "$pid"
    rc=$?
    if [[ $rc -eq 2 ]] && grep -qE 'io_uring.*(Operation not permitted|Function not implemented|Invalid argument)' "$dir/server.log"; then
      echo "SKIPPED: this kernel refuses the floor's io_uring features:"
      cat "$dir/server.log"
      exit 0
    fi
    echo "FAIL: server exited with $rc during startup:"
    cat "$dir/server.log"
    exit 1
  fi
  sleep 0.05
done
if [[ ! -s $port_file ]]; then
  echo "FAIL: server never wrote its port"
  kill -9 "$pid"
  exit 1
fi
port=$(cat "$port_file")

check_run() {  # mode, extra flags...
  local mode=$1
  shift
  local out
  out=$("$load" --port="$port" --mode="$mode" --connections=30 --requests=300 \
        --json "$@") || { echo "FAIL: echo_load --mode=$mode failed"; return 1; }
  python3 - "$out" "$mode" <<'PY' || return 1
import json, sys
r = json.loads(sys.argv[1].strip().splitlines()[-1])
bad = {k: r[k] for k in ("mismatches", "half_written", "unanswered",
                         "disconnects", "connect_failures") if r.get(k)}
if r["requests"] != 30 * 300 or bad:
    print("FAIL: %s: %d requests (want 9000), problems %s" %
          (sys.argv[2], r["requests"], bad))
    sys.exit(1)
print("%s: %d round trips verified" % (sys.argv[2], r["requests"]))
PY
}

status=0
check_run ping_pong || status=1
check_run stream --pipeline=8 || status=1

kill -TERM "$pid"
wait "$pid"
rc=$?
if [[ $rc -ne 0 ]]; then
  echo "FAIL: server exited with $rc after SIGTERM:"
  cat "$dir/server.log"
  status=1
fi
exit $status
