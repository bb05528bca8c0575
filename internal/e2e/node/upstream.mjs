// Helpers shared by the node test files: what lbgpt-sim (the simulated
// upstream behind lbgptd) received, read from its /_sim/ control endpoints.
// LBGPT_SIM_URL (http://127.0.0.1:PORT) is set by the Go test.
import assert from "node:assert/strict";

export const simURL = process.env.LBGPT_SIM_URL;

async function get(path) {
  assert.ok(simURL, "LBGPT_SIM_URL is set by the Go test");
  const res = await fetch(simURL + path);
  assert.equal(res.status, 200, `GET ${path}`);
  return res.json();
}

// upstreamPaths runs fn and returns the URL paths of the requests the
// simulator received meanwhile (for instance ["/v1/responses"]), and fn's result.
export async function upstreamPaths(fn) {
  const before = (await get("/_sim/log")).length;
  const result = await fn();
  const paths = (await get("/_sim/log")).slice(before).map((r) => r.path);
  return { paths, result };
}

// upstreamRequests is the number of requests the simulator has received, on
// every account (and with no or a wrong key).
export async function upstreamRequests() {
  const stats = await get("/_sim/stats");
  return Object.values(stats).reduce((n, s) => n + s.requests, 0);
}
