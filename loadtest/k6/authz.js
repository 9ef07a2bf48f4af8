// Authorization checks: a member with a Test Manager seat and the test_executor role in
// one project asks what they may do, alone and in batches; every answer must be the
// one the role table gives.
//   k6 run -e BASE=http://127.0.0.1:8080 -e OPERATOR_TOKEN=$(cat data/operator_token) loadtest/k6/authz.js
// Env: VUS (32), DURATION (10s).
import http from "k6/http";
import { check } from "k6";
import { base, json, must, newOrg, member, dropOrg } from "./lib.js";

export const options = {
  vus: parseInt(__ENV.VUS || "32", 10),
  duration: __ENV.DURATION || "10s",
  thresholds: {
    checks: ["rate==1"],
    http_req_failed: ["rate==0"],
    http_req_duration: ["p(99)<100"],
  },
};

export function setup() {
  const o = newOrg("k6 authz");
  const pool = must(201, "POST", `/v1/orgs/${o.org}/pools`, o.key, { product: "test-manager", kind: "named", seats: 5 });
  const ann = member(o, `ann-${o.stamp}@k6.test`, ["sessions"]);
  const bob = member(o, `bob-${o.stamp}@k6.test`, ["sessions"]);
  must(200, "POST", `/v1/orgs/${o.org}/pools/${pool.id}/allocations`, o.key, { users: [ann.email] });
  const p = must(201, "POST", `/v1/orgs/${o.org}/projects`, o.key, { name: "Checkout", product: "test-manager" });
  must(200, "PUT", `/v1/orgs/${o.org}/projects/${p.id}/access`, o.key, { user: ann.id, roles: ["test_executor"] });
  must(200, "PUT", `/v1/orgs/${o.org}/projects/${p.id}/access`, o.key, { user: bob.id, roles: ["test_executor"] });
  return { o, project: p.id, ann: ann.key, bob: bob.key };
}

function ask(s, key, permission) {
  return http.get(`${base}/v1/orgs/${s.o.org}/authz/check?project=${s.project}&permission=${permission}`, json(key));
}

export default function (s) {
  // Ann holds the seat: the licensed right is hers.
  check(ask(s, s.ann, "executions.manual"), { "ann may run manual executions": (r) => r.status === 200 && r.json("allowed") === true });
  // No role of hers grants it.
  check(ask(s, s.ann, "project.delete"), { "ann may not delete the project": (r) => r.status === 200 && r.json("allowed") === false });
  // Bob has the role but no seat: licensed rights are refused, reads are not.
  check(ask(s, s.bob, "executions.manual"), {
    "bob is refused for the missing seat": (r) => r.status === 200 && r.json("allowed") === false && r.body.includes("missing seat"),
  });
  check(ask(s, s.bob, "executions.read"), { "bob may read executions": (r) => r.status === 200 && r.json("allowed") === true });
  // The batch form answers each.
  const b = ask(s, s.ann, "executions.manual,executions.read,project.delete");
  check(b, {
    "batch: all-of is false, each answered": (r) =>
      r.status === 200 && r.json("allowed") === false && r.json("results").length === 3 && r.json("results.0.allowed") === true,
  });
}

export function teardown(s) {
  dropOrg(s.o);
}
