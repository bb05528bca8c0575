// What this proves: lbgptd's retry budget holds for a real client. Every
// upstream request fails (lbgpt-sim answers 503 to all), the daemon may make
// at most [daemon] max_attempts = 3 attempts per request, and the official
// openai SDK runs with its DEFAULT retries (maxRetries not set: 2 more tries
// on a 5xx). The call must fail, and the upstream must have seen at most 3
// requests for it in all: lbgptd has already retried, so it tells the SDK not
// to retry again (x-should-retry: false) instead of letting it multiply the
// attempts (3 SDK tries x 3 daemon attempts = 9 upstream requests).
//
// Run by internal/e2e (TestHTTPRetryBudgetNode) with Node >= 22 from
// node_modules/.bin/node, with LBGPT_BASE_URL, LBGPT_TOKEN and LBGPT_SIM_URL set.
import { test } from "node:test";
import assert from "node:assert/strict";
import OpenAI from "openai";
import { upstreamRequests } from "./upstream.mjs";

const baseURL = process.env.LBGPT_BASE_URL;
const token = process.env.LBGPT_TOKEN;
assert.ok(baseURL && token, "LBGPT_BASE_URL and LBGPT_TOKEN are set by the Go test");
const client = new OpenAI({ baseURL, apiKey: token }); // the SDK's default retries
const maxAttempts = 3;

// failsWithinBudget makes one SDK call that must fail, and checks how many
// upstream requests it cost. Each call asks for a model that the Go test
// routes to a backend of its own, so that the backend is fresh: not resting
// after an earlier call's failures, the call reaches the upstream.
async function failsWithinBudget(request) {
  const before = await upstreamRequests();
  let failure;
  try {
    await request();
  } catch (err) {
    failure = err;
  }
  const sent = (await upstreamRequests()) - before;
  assert.ok(failure, "the call failed");
  assert.ok(failure instanceof OpenAI.APIError, `an APIError, not ${failure}`);
  assert.ok(failure.status >= 500 && failure.status < 600, `a 5xx, not ${failure.status}`);
  assert.ok(sent >= 1, "the request reached the upstream");
  assert.ok(sent <= maxAttempts, `${sent} upstream requests for one call: more than max_attempts = ${maxAttempts}`);
  assert.equal(failure.headers?.get("x-should-retry"), "false", "lbgptd tells the SDK it already retried");
}

test("a failing chat completion costs at most max_attempts upstream requests", async () => {
  await failsWithinBudget(() =>
    client.chat.completions.create({ model: "gpt-4o-mini", messages: [{ role: "user", content: "this will fail" }] }),
  );
});

test("a failing streamed chat completion costs at most max_attempts upstream requests", async () => {
  await failsWithinBudget(async () => {
    const stream = await client.chat.completions.create({
      model: "gpt-4o",
      messages: [{ role: "user", content: "this stream will fail" }],
      stream: true,
    });
    for await (const _ of stream);
  });
});
