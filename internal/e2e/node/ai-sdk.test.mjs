// What this proves: the Vercel AI SDK (`ai` with `@ai-sdk/openai`, newest
// versions, pinned in package.json) works against lbgptd's OpenAI-compatible
// HTTP endpoint with only createOpenAI({ baseURL, apiKey }) changed. Its
// default provider, openai("model"), speaks the Responses API: generateText
// and streamText through it must reach the upstream as /v1/responses and
// come back with text; openai.chat("model") speaks chat completions, plain
// and streamed. lbgpt's X-Lbgpt-Backend header reaches the SDK's response.
//
// Run by internal/e2e (TestHTTPNodeClients/ai-sdk) with Node >= 22 from
// node_modules/.bin/node, with LBGPT_BASE_URL, LBGPT_TOKEN, LBGPT_BACKENDS and
// LBGPT_SIM_URL set.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createOpenAI } from "@ai-sdk/openai";
import { generateText, streamText } from "ai";
import { upstreamPaths } from "./upstream.mjs";

const baseURL = process.env.LBGPT_BASE_URL;
const token = process.env.LBGPT_TOKEN;
const backends = (process.env.LBGPT_BACKENDS ?? "").split(",").filter(Boolean);
assert.ok(baseURL && token && backends.length > 0, "LBGPT_BASE_URL, LBGPT_TOKEN and LBGPT_BACKENDS are set by the Go test");
const openai = createOpenAI({ baseURL, apiKey: token });
// No retries by the SDK: a failure shows as itself, at once.
const maxRetries = 0;

// stream runs streamText and returns its text; an error the SDK reports on
// the side (onError) fails the test instead of leaving the text empty.
async function stream(options) {
  let failure;
  const result = streamText({ ...options, maxRetries, onError: ({ error }) => (failure ??= error) });
  let text = "";
  for await (const delta of result.textStream) text += delta;
  if (failure) throw failure;
  return { text, response: await result.response };
}

test("generateText on the default provider (Responses API)", async () => {
  const { paths, result } = await upstreamPaths(() =>
    generateText({ model: openai("gpt-4o-mini"), prompt: "Name three uses of a load balancer.", maxRetries }),
  );
  assert.equal(typeof result.text, "string");
  assert.ok(result.text.length > 0, "text is not empty");
  assert.ok(backends.includes(result.response.headers?.["x-lbgpt-backend"]), `x-lbgpt-backend: ${JSON.stringify(result.response.headers)}`);
  assert.deepEqual(paths, ["/v1/responses"], "the default provider went upstream through the Responses API");
});

test("streamText on the default provider (Responses API)", async () => {
  const { paths, result } = await upstreamPaths(() => stream({ model: openai("gpt-4o-mini"), prompt: "Stream a short poem about queues." }));
  assert.ok(result.text.length > 0, "streamed text arrived");
  assert.deepEqual(paths, ["/v1/responses"]);
});

test("generateText on openai.chat (chat completions)", async () => {
  const { paths, result } = await upstreamPaths(() =>
    generateText({ model: openai.chat("gpt-4o-mini"), prompt: "Chat completions through the AI SDK", maxRetries }),
  );
  assert.match(result.text, /Chat completions through the AI SDK/);
  assert.equal(result.finishReason, "stop");
  assert.ok(result.usage.outputTokens > 0);
  assert.ok(backends.includes(result.response.headers?.["x-lbgpt-backend"]));
  assert.deepEqual(paths, ["/v1/chat/completions"]);
});

test("streamText on openai.chat (chat completions)", async () => {
  const { paths, result } = await upstreamPaths(() => stream({ model: openai.chat("gpt-4o"), prompt: "Streamed chat through the AI SDK" }));
  assert.match(result.text, /Streamed chat through the AI SDK/);
  assert.deepEqual(paths, ["/v1/chat/completions"]);
});
