// Steady state: every VU is a runtime that acquires a seat with its own fingerprint,
// heartbeats it a few times and releases it, over and over; the pool has a seat per VU.
//   k6 run -e BASE=http://127.0.0.1:8080 -e OPERATOR_TOKEN=$(cat data/operator_token) loadtest/k6/steady.js
// Env: VUS (32), DURATION (10s), HEARTBEATS (3).
import http from "k6/http";
import { check } from "k6";
import { base, json, must, newOrg, member, dropOrg } from "./lib.js";

const vus = parseInt(__ENV.VUS || "32", 10);
const heartbeats = parseInt(__ENV.HEARTBEATS || "3", 10);

export const options = {
  vus,
  duration: __ENV.DURATION || "10s",
  thresholds: {
    checks: ["rate==1"],
    http_req_failed: ["rate==0"],
    "http_req_duration{name:acquire}": ["p(99)<250"],
    "http_req_duration{name:heartbeat}": ["p(99)<250"],
    "http_req_duration{name:release}": ["p(99)<250"],
  },
};

export function setup() {
  const o = newOrg("k6 steady");
  must(201, "POST", `/v1/orgs/${o.org}/pools`, o.key, { product: "kre", kind: "floating", seats: vus, ttl_seconds: 60 });
  o.runtime = member(o, `runtime-${o.stamp}@k6.test`, ["sessions"]).key;
  return o;
}

export default function (o) {
  const auth = json(o.runtime);
  const a = http.post(`${base}/v1/sessions`, JSON.stringify({ product: "kre", fingerprint: `vu-${__VU}` }), Object.assign({ tags: { name: "acquire" } }, auth));
  if (!check(a, { "acquire 201 (or 200: this VU's live lease)": (r) => r.status === 201 || r.status === 200 })) return;
  const id = a.json("session_id");
  for (let i = 0; i < heartbeats; i++) {
    const h = http.post(`${base}/v1/sessions/${id}/heartbeat`, null, Object.assign({ tags: { name: "heartbeat" } }, auth));
    check(h, { "heartbeat 200 with a token": (r) => r.status === 200 && r.json("token") !== undefined });
  }
  const d = http.del(`${base}/v1/sessions/${id}`, null, Object.assign({ tags: { name: "release" } }, auth));
  check(d, { "release 204": (r) => r.status === 204 });
}

export function teardown(o) {
  const u = http.get(`${base}/v1/orgs/${o.org}/usage`, json(o.key));
  check(u, { "no seat left held": (r) => r.status === 200 && r.json("pools.0.live") === 0 });
  dropOrg(o);
}
