// A burst on a small pool: many VUs want 3 seats at once. Some queue (wait_seconds),
// some do not; the seats must never be exceeded, refusals must be the documented ones
// (409 seat_cap_reached with retry_after, 429 rate_limited), and queued acquires must
// be served as seats free.
//   k6 run -e BASE=http://127.0.0.1:8080 -e OPERATOR_TOKEN=$(cat data/operator_token) loadtest/k6/burst.js
// Env: VUS (40), DURATION (10s), SEATS (3).
import http from "k6/http";
import { check, sleep } from "k6";
import { Counter } from "k6/metrics";
import { base, json, must, newOrg, member, dropOrg } from "./lib.js";

const seats = parseInt(__ENV.SEATS || "3", 10);
const granted = new Counter("granted");
const waitedGrants = new Counter("granted_after_waiting");
const capReached = new Counter("cap_reached");

export const options = {
  vus: parseInt(__ENV.VUS || "40", 10),
  duration: __ENV.DURATION || "10s",
  thresholds: {
    checks: ["rate==1"],
    granted: ["count>0"],
    granted_after_waiting: ["count>0"],
    cap_reached: ["count>0"],
  },
};

export function setup() {
  const o = newOrg("k6 burst");
  must(201, "POST", `/v1/orgs/${o.org}/pools`, o.key, { product: "kre", kind: "floating", seats, ttl_seconds: 30 });
  o.runtime = member(o, `runtime-${o.stamp}@k6.test`, ["sessions"]).key;
  return o;
}

export default function (o) {
  const auth = json(o.runtime);
  const queue = __VU % 2 === 0;
  const body = { product: "kre", fingerprint: `vu-${__VU}-${__ITER}` };
  if (queue) body.wait_seconds = 2;
  const a = http.post(`${base}/v1/sessions`, JSON.stringify(body), auth);
  const ok = check(a, {
    "granted, or refused as documented": (r) =>
      r.status === 201 ||
      (r.status === 409 && r.json("error") === "seat_cap_reached" && r.json("retry_after") >= 1) ||
      (r.status === 429 && r.json("error") === "rate_limited"),
  });
  if (!ok) return;
  if (a.status === 201) {
    granted.add(1);
    if (queue && a.timings.duration > 50) waitedGrants.add(1);
    sleep(0.05); // hold the seat a little
    check(http.del(`${base}/v1/sessions/${a.json("session_id")}`, null, auth), { "release 204": (r) => r.status === 204 });
  } else if (a.status === 409) {
    capReached.add(1);
  }
  if (__VU === 1 && __ITER % 5 === 0) {
    const p = http.get(`${base}/v1/orgs/${o.org}/usage`, json(o.key));
    check(p, { "live never above the seats": (r) => r.status === 200 && r.json("pools.0.live") <= seats });
  }
}

export function teardown(o) {
  const u = http.get(`${base}/v1/orgs/${o.org}/usage`, json(o.key));
  check(u, { "peak never above the seats": (r) => r.status === 200 && r.json("pools.0.peak") <= seats });
  dropOrg(o);
}
