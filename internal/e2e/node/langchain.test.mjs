// What this proves: LangChain's ChatOpenAI (`@langchain/openai` with its peer
// `@langchain/core`, newest versions, pinned in package.json) works against
// lbgptd's OpenAI-compatible HTTP endpoint with only configuration.baseURL
// and apiKey changed: invoke() through the Responses API (useResponsesApi:
// true, reaching the upstream as /v1/responses), invoke() through chat
// completions (the default), and stream() gives text chunk by chunk.
//
// Run by internal/e2e (TestHTTPNodeClients/langchain) with Node >= 22 from
// node_modules/.bin/node, with LBGPT_BASE_URL, LBGPT_TOKEN and LBGPT_SIM_URL set.
import { test } from "node:test";
import assert from "node:assert/strict";
import { ChatOpenAI } from "@langchain/openai";
import { upstreamPaths } from "./upstream.mjs";

const baseURL = process.env.LBGPT_BASE_URL;
const token = process.env.LBGPT_TOKEN;
assert.ok(baseURL && token, "LBGPT_BASE_URL and LBGPT_TOKEN are set by the Go test");

// maxRetries 0: a failure shows as itself, at once.
function chat(options = {}) {
  return new ChatOpenAI({ model: "gpt-4o-mini", apiKey: token, configuration: { baseURL }, maxRetries: 0, ...options });
}

test("invoke through the Responses API (useResponsesApi: true)", async () => {
  const { paths, result: msg } = await upstreamPaths(() => chat({ useResponsesApi: true }).invoke("What does a load balancer do?"));
  assert.equal(typeof msg.text, "string");
  assert.ok(msg.text.length > 0, "text is not empty");
  assert.deepEqual(paths, ["/v1/responses"]);
});

test("invoke through chat completions (the default)", async () => {
  const { paths, result: msg } = await upstreamPaths(() => chat().invoke("LangChain through chat completions"));
  assert.match(msg.text, /LangChain through chat completions/);
  assert.ok(msg.usage_metadata?.output_tokens > 0, "usage is reported");
  assert.deepEqual(paths, ["/v1/chat/completions"]);
});

test("stream through chat completions", async () => {
  const { paths, result: chunks } = await upstreamPaths(async () => {
    const chunks = [];
    for await (const chunk of await chat().stream("LangChain streams this answer")) chunks.push(chunk.text);
    return chunks;
  });
  assert.ok(chunks.filter((c) => c.length > 0).length >= 2, `text came in chunks: ${JSON.stringify(chunks)}`);
  assert.match(chunks.join(""), /LangChain streams this answer/);
  assert.deepEqual(paths, ["/v1/chat/completions"]);
});

test("stream through the Responses API", async () => {
  const { paths, result: text } = await upstreamPaths(async () => {
    let text = "";
    for await (const chunk of await chat({ useResponsesApi: true }).stream("Stream a response through LangChain")) text += chunk.text;
    return text;
  });
  assert.ok(text.length > 0, "streamed text arrived");
  assert.deepEqual(paths, ["/v1/responses"]);
});
