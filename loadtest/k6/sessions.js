// Behaviour under load: many runtimes acquire, heartbeat and release against a small
// floating pool, and the cap must hold. Env: BASE, KEY (a key with the sessions scope),
// ORG, PRODUCT (kre), SEATS (the pool's seats), ADMIN_KEY (owner key, for the usage check).
//   k6 run --vus 64 --duration 20s -e BASE=http://127.0.0.1:8080 -e KEY=sk_... \
//     -e ORG=org_... -e ADMIN_KEY=sk_... -e SEATS=5 loadtest/k6/sessions.js
import http from "k6/http";
import { check } from "k6";

const base = __ENV.BASE || "http://127.0.0.1:8080";
const product = __ENV.PRODUCT || "kre";
const seats = parseInt(__ENV.SEATS || "5", 10);
const auth = { headers: { Authorization: `Bearer ${__ENV.KEY}`, "Content-Type": "application/json" } };
const admin = { headers: { Authorization: `Bearer ${__ENV.ADMIN_KEY || __ENV.KEY}` } };

export const options = { thresholds: { checks: ["rate>0.99"] } };

export default function () {
  const r = http.post(`${base}/v1/sessions`, JSON.stringify({ product, fingerprint: `vu-${__VU}` }), auth);
  check(r, { "acquire 201/200 or 409 seat_cap_reached": (x) =>
    x.status === 201 || x.status === 200 || (x.status === 409 && x.json("error") === "seat_cap_reached") });
  if (r.status === 201 || r.status === 200) {
    const sid = r.json("session_id");
    check(http.post(`${base}/v1/sessions/${sid}/heartbeat`, null, auth), { "heartbeat 200": (x) => x.status === 200 });
    check(http.del(`${base}/v1/sessions/${sid}`, null, auth), { "release 204": (x) => x.status === 204 || x.status === 404 });
  }
  if (__ENV.ORG && __ITER % 10 === 0) {
    const live = http.get(`${base}/v1/orgs/${__ENV.ORG}/sessions?limit=1000`, admin);
    check(live, { "live sessions never exceed the seats": (x) => x.status === 200 && x.json("items").length <= seats });
  }
}
