// One iteration = acquire a fresh lease, then release it. Env: BASE, KEY, PRODUCT (kre).
//   k6 run --vus 64 --duration 10s -e BASE=http://127.0.0.1:8080 -e KEY=sk_... loadtest/k6/cycle.js
import http from "k6/http";
import { check } from "k6";

const base = __ENV.BASE || "http://127.0.0.1:8080";
const product = __ENV.PRODUCT || "kre";
const auth = { headers: { Authorization: `Bearer ${__ENV.KEY}`, "Content-Type": "application/json" } };

export default function () {
  const fingerprint = `k6-${__VU}-${__ITER}-${Date.now()}`;
  const r = http.post(`${base}/v1/sessions`, JSON.stringify({ product, fingerprint }), auth);
  if (!check(r, { "acquire 201": (x) => x.status === 201 })) return;
  const d = http.del(`${base}/v1/sessions/${r.json("session_id")}`, null, auth);
  check(d, { "release 204": (x) => x.status === 204 });
}
