#!/usr/bin/env bash
# The README's walk-through as a script: it prints each call's status and answer, takes
# the ids it needs from the answers, and stops at the first status it did not expect.
# tests/api/ops.rs runs it against the real server, so the README cannot drift from it.
# Needs curl and python3; runs from any directory.
#   B=http://127.0.0.1:8080 OP=$(cat data/operator_token) scripts/walkthrough.sh
set -euo pipefail
B=${B:-http://127.0.0.1:8080}
OP=${OP:?set OP to the operator token, e.g. OP=\$(cat data/operator_token)}

# call STATUS METHOD PATH KEY [BODY]: the answer is kept in $R.
call() {
  local want=$1 method=$2 path=$3 key=$4 body=${5:-} status
  local args=(-sS -o /dev/stdout -w '\n%{http_code}' -X "$method" "$B$path" -H "Authorization: Bearer $key")
  [ -n "$body" ] && args+=(-H 'Content-Type: application/json' -d "$body")
  R=$(curl "${args[@]}")
  status=${R##*$'\n'}
  R=${R%$'\n'*}
  printf '%s %s → %s\n' "$method" "$path" "$status"
  [ -n "$R" ] && printf '  %s\n' "$(printf '%s' "${R:0:300}" | tr '\n' ' ')"
  if [ "$status" != "$want" ]; then
    echo "expected $want" >&2
    exit 1
  fi
}

# field PATH: a field of the last answer, e.g. `field owner.id`, `field items.0.id`.
field() {
  python3 -c 'import json, sys
v = json.loads(sys.argv[1])
for k in sys.argv[2].split("."):
    v = v[int(k)] if isinstance(v, list) else v[k]
print(v)' "$R" "$1"
}

# --- walk-through ---
# The operator founds an organization; the owner's key (admin + sessions) is shown once.
call 201 POST /v1/orgs "$OP" '{"name":"Acme","owner_email":"owner@acme.io"}'
ORG=$(field id); KEY=$(field owner_api_key)

# Five floating seats of KRE; leases live 60 s unless heartbeated.
call 201 POST /v1/orgs/$ORG/pools "$KEY" '{"product":"kre","kind":"floating","seats":5,"ttl_seconds":60}'

# A member with a runtime key (sessions scope only).
call 201 POST /v1/orgs/$ORG/users "$KEY" '{"email":"ci@acme.io"}'
CI=$(field id)
call 201 POST /v1/orgs/$ORG/users/$CI/api-keys "$KEY" '{"name":"ci-runner","scopes":["sessions"]}'
RT=$(field key)

# Acquire: 201 with a lease and its token; the same fingerprint again: 200, the same lease.
call 201 POST /v1/sessions "$RT" '{"product":"kre","fingerprint":"build-agent-7"}'
SES=$(field session_id)
call 200 POST /v1/sessions "$RT" '{"product":"kre","fingerprint":"build-agent-7"}'
call 200 POST /v1/sessions/$SES/heartbeat "$RT"
call 204 DELETE /v1/sessions/$SES "$RT"

# Five agents take the five seats; a sixth hears 409 seat_cap_reached with retry_after.
for agent in 1 2 3 4 5; do
  call 201 POST /v1/sessions "$RT" "{\"product\":\"kre\",\"fingerprint\":\"agent-$agent\"}"
done
call 409 POST /v1/sessions "$RT" '{"product":"kre","fingerprint":"agent-6"}'
call 200 GET /v1/orgs/$ORG/sessions "$KEY"      # the live leases, for admins
call 200 GET /.well-known/jwks.json "$KEY"      # verifies lease tokens offline (EdDSA, kid)

# 10 KaneAI seats that each include a Test Manager seat; a 30-day KRE trial beside them.
call 201 POST /v1/orgs/$ORG/pools "$KEY" '{"product":"kaneai","kind":"named","seats":10,"includes":["test-manager"],"max_machines":2}'
KANEAI=$(field id)
TRIAL_END=$(python3 -c 'import datetime as d; print((d.datetime.now(d.timezone.utc) + d.timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ"))')
call 201 POST /v1/orgs/$ORG/pools "$KEY" "{\"product\":\"kre\",\"kind\":\"floating\",\"seats\":3,\"source\":\"trial\",\"expires_at\":\"$TRIAL_END\"}"

# The team in one call, then seats for two of them, all or none.
call 201 POST /v1/orgs/$ORG/users "$KEY" '{"users":[{"email":"ann@acme.io"},{"email":"bob@acme.io"},{"email":"cat@acme.io"}]}'
call 200 POST /v1/orgs/$ORG/pools/$KANEAI/allocations "$KEY" '{"users":["ann@acme.io","bob@acme.io"]}'
call 200 GET /v1/orgs/$ORG/users/ann@acme.io "$KEY"   # seats: kaneai and test-manager

# Bob leaves the team: his seat goes to Cat in one step.
call 200 POST /v1/orgs/$ORG/pools/$KANEAI/allocations/transfer "$KEY" '{"from":"bob@acme.io","to":"cat@acme.io"}'

# A Test Manager project; Ann executes tests in it. May she run a manual execution?
call 201 POST /v1/orgs/$ORG/projects "$KEY" '{"name":"Checkout","product":"test-manager"}'
PROJECT=$(field id)
call 200 PUT /v1/orgs/$ORG/projects/$PROJECT/access "$KEY" '{"user":"ann@acme.io","roles":["test_executor"]}'
call 200 GET "/v1/orgs/$ORG/authz/check?user=ann@acme.io&project=$PROJECT&permission=executions.manual" "$KEY"

# What is bought, handed out and running now; who changed what (newest first).
call 200 GET /v1/orgs/$ORG/usage "$KEY"
call 200 GET "/v1/orgs/$ORG/audit?limit=2" "$KEY"
call 200 GET /metrics "$KEY"
