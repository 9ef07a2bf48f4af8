// An admin mix: each iteration adds a member, gives them a key and a named seat, reads
// them, the pools, usage and the audit log, then revokes the seat and the key and
// removes the member. Every status must be the documented one.
//   k6 run -e BASE=http://127.0.0.1:8080 -e OPERATOR_TOKEN=$(cat data/operator_token) loadtest/k6/admin.js
// Env: VUS (8), DURATION (10s).
import http from "k6/http";
import { check } from "k6";
import { base, json, must, newOrg, dropOrg } from "./lib.js";

export const options = {
  vus: parseInt(__ENV.VUS || "8", 10),
  duration: __ENV.DURATION || "10s",
  thresholds: {
    checks: ["rate==1"],
    http_req_failed: ["rate==0"],
    http_req_duration: ["p(99)<500"],
  },
};

export function setup() {
  const o = newOrg("k6 admin");
  o.pool = must(201, "POST", `/v1/orgs/${o.org}/pools`, o.key, { product: "kaneai", kind: "named", seats: 1000 }).id;
  return o;
}

export default function (o) {
  const admin = json(o.key);
  const org = `${base}/v1/orgs/${o.org}`;
  const email = `m-${__VU}-${__ITER}-${o.stamp}@k6.test`;
  const u = http.post(`${org}/users`, JSON.stringify({ email }), admin);
  if (!check(u, { "member added 201": (r) => r.status === 201 })) return;
  const id = u.json("id");
  const k = http.post(`${org}/users/${id}/api-keys`, JSON.stringify({ name: "ci", scopes: ["sessions"] }), admin);
  check(k, { "key created 201 with its secret": (r) => r.status === 201 && r.json("key").startsWith("sk_") });
  const a = http.post(`${org}/pools/${o.pool}/allocations`, JSON.stringify({ users: [email] }), admin);
  check(a, { "seat allocated 200": (r) => r.status === 200 && r.json("seats") === 1000 });
  check(http.get(`${org}/users/${id}`, admin), { "member read with the seat": (r) => r.status === 200 && r.json("seats").length === 1 });
  check(http.get(`${org}/pools?limit=10`, admin), { "pools listed 200": (r) => r.status === 200 });
  check(http.patch(`${org}/pools/${o.pool}`, JSON.stringify({ seats: 1000 }), admin), { "pool patched 200": (r) => r.status === 200 });
  check(http.get(`${org}/usage`, admin), { "usage 200": (r) => r.status === 200 });
  check(http.get(`${org}/audit?limit=5`, admin), { "audit 200, newest first": (r) => r.status === 200 && r.json("items").length > 0 });
  check(http.post(`${org}/pools/${o.pool}/allocations/revoke`, JSON.stringify({ users: [email] }), admin), { "seat revoked 200": (r) => r.status === 200 });
  check(http.del(`${org}/api-keys/${k.json("id")}`, null, admin), { "key revoked 204": (r) => r.status === 204 });
  check(http.del(`${org}/users/${id}`, null, admin), { "member removed 204": (r) => r.status === 204 });
}

export function teardown(o) {
  dropOrg(o);
}
