// Shared by the suites: each sets up its own organization through the API.
// Env: BASE (http://127.0.0.1:8080), OPERATOR_TOKEN (the operator's token).
import http from "k6/http";
import { fail } from "k6";

export const base = __ENV.BASE || "http://127.0.0.1:8080";

export function json(key) {
  return { headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" } };
}

// A call that must answer `status`; anything else stops the setup with the answer.
export function must(status, method, path, key, body) {
  const r = http.request(method, `${base}${path}`, body === undefined ? null : JSON.stringify(body), json(key));
  if (r.status !== status) {
    fail(`${method} ${path}: expected ${status}, got ${r.status} ${r.body}`);
  }
  return r.body ? r.json() : null;
}

// A fresh organization: {org, owner (id), key (owner's admin+sessions key)}.
export function newOrg(name) {
  const op = __ENV.OPERATOR_TOKEN;
  if (!op) fail("set OPERATOR_TOKEN (e.g. -e OPERATOR_TOKEN=$(cat data/operator_token))");
  const stamp = `${Date.now()}-${Math.floor(Math.random() * 1e6)}`;
  const o = must(201, "POST", "/v1/orgs", op, { name: `${name} ${stamp}`, owner_email: `owner-${stamp}@k6.test` });
  return { org: o.id, owner: o.owner.id, key: o.owner_api_key, stamp };
}

// A member with a key of `scopes`: {id, email, key}.
export function member(o, email, scopes) {
  const u = must(201, "POST", `/v1/orgs/${o.org}/users`, o.key, { email });
  const k = must(201, "POST", `/v1/orgs/${o.org}/users/${u.id}/api-keys`, o.key, { name: "k6", scopes });
  return { id: u.id, email, key: k.key };
}

export function dropOrg(o) {
  http.del(`${base}/v1/orgs/${o.org}`, null, json(__ENV.OPERATOR_TOKEN));
}
