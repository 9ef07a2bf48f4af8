#!/usr/bin/env bash
# DESIGN §4's scale figures: LEASES live leases spread over ORGS organizations, the
# server's resident memory with them, and how long a restart takes to be ready (/readyz)
# with them, after SIGTERM and after kill -9.
#
#   loadtest/scale.sh                      # 1,000,000 leases over 1,000 orgs
#   LEASES=200000 ORGS=200 loadtest/scale.sh
#
# Needs wrk (apt-get install -y wrk), curl, python3. Builds the release binary.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
leases=${LEASES:-1000000} orgs=${ORGS:-1000}
(cd "$root" && cargo build --release -q)
work=$(mktemp -d)
token=scale-operator-$$-$(python3 -c "import secrets; print(secrets.token_hex(16))")
pid=""
cleanup() {
  [[ -n $pid ]] && kill -9 "$pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
start() { # starts the server on $work/data; sets pid and url; $work/ready: seconds until ready
  local t0 log=$work/log.$RANDOM
  t0=$(date +%s.%N)
  SEATKEEPER_BIND=127.0.0.1:0 SEATKEEPER_DATA_DIR=$work/data SEATKEEPER_OPERATOR_TOKEN=$token \
    SEATKEEPER_LOG=warn,seatkeeper=info "$root/target/release/seatkeeper" serve >"$log" 2>&1 &
  pid=$!
  disown "$pid"
  until grep -q 'listening on http://' "$log"; do
    kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; exit 1; }
    sleep 0.05
  done
  url=$(grep -o 'listening on http://[0-9.:]*' "$log" | head -1 | sed 's/listening on //')
  until curl -sf "$url/readyz" >/dev/null; do sleep 0.02; done
  python3 -c "import time; print('%.2f' % (time.time() - $t0))" >"$work/ready"
}
rss_mib() { awk '/VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$pid/status"; }

start
python3 - "$url" "$token" "$orgs" >"$work/keys" <<'PY'
import json, sys, urllib.request
url, token, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
def post(path, key, body):
    req = urllib.request.Request(url + path, json.dumps(body).encode(),
        {"Authorization": "Bearer " + key, "Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(req))
for i in range(n):
    org = post("/v1/orgs", token, {"name": f"scale-{i}", "owner_email": f"o{i}@scale.io"})
    key = org["owner_api_key"]
    post(f"/v1/orgs/{org['id']}/pools", key,
         {"product": "kre", "kind": "floating", "seats": 100000, "ttl_seconds": 86400})
    print(key)
PY
echo "# $orgs orgs ready; acquiring $leases leases"
KEYS=$work/keys wrk -t2 -c64 -d900s -s "$here/wrk/acquire_many.lua" "$url" >"$work/wrk.out" 2>&1 &
wrk_pid=$!
t0=$(date +%s)
while :; do
  live=$(curl -s "$url/metrics" | awk '/^seatkeeper_sessions_live /{print $2}')
  [[ ${live%.*} -ge $leases ]] && break
  kill -0 "$wrk_pid" 2>/dev/null || { echo "wrk stopped early" >&2; cat "$work/wrk.out" >&2; exit 1; }
  sleep 1
done
kill -INT "$wrk_pid"; wait "$wrk_pid" 2>/dev/null || true
rate=$(( ${live%.*} / ( $(date +%s) - t0 ) ))
live=$(curl -s "$url/metrics" | awk '/^seatkeeper_sessions_live /{print $2}')
echo "# live leases: ${live%.*}   about $rate acquires/s"
echo "rss_mib_loaded $(rss_mib)"
kill -TERM "$pid"; while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
start
echo "restart_after_sigterm_s $(cat "$work/ready")"
echo "rss_mib_after_restart $(rss_mib)"
kill -9 "$pid"; while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
start
echo "restart_after_kill9_s $(cat "$work/ready")"
echo "rss_mib_after_kill9_restart $(rss_mib)"
echo "live_after_restart $(curl -s "$url/metrics" | awk '/^seatkeeper_sessions_live /{print $2}')"
