// lbgptd's OpenAI-compatible endpoint, driven by the official openai npm
// package. Run by internal/e2e (TestHTTPWithOpenAINode) with LBGPT_BASE_URL
// (http://127.0.0.1:PORT/v1) and LBGPT_TOKEN set; node:test reports each case.
import { test } from "node:test";
import assert from "node:assert/strict";
import OpenAI from "openai";

const baseURL = process.env.LBGPT_BASE_URL;
const token = process.env.LBGPT_TOKEN;
const client = new OpenAI({ baseURL, apiKey: token, maxRetries: 0 });

test("plain chat completion", async () => {
  const { data, response } = await client.chat.completions
    .create({ model: "gpt-4o-mini", messages: [{ role: "user", content: "What is a load balancer?" }] })
    .withResponse();
  assert.equal(data.object, "chat.completion");
  assert.match(data.choices[0].message.content, /What is a load balancer/);
  assert.equal(data.choices[0].finish_reason, "stop");
  assert.ok(data.usage.total_tokens > 0);
  assert.equal(response.headers.get("x-lbgpt-backend"), "sim");
  assert.equal(response.headers.get("x-lbgpt-attempts"), "1");
  assert.equal(response.headers.get("x-lbgpt-cache"), "miss");
});

test("streamed chat completion with a usage chunk", async () => {
  const stream = await client.chat.completions.create({
    model: "gpt-4o",
    messages: [{ role: "user", content: "Stream me an answer" }],
    stream: true,
    stream_options: { include_usage: true },
  });
  const chunks = [];
  for await (const chunk of stream) chunks.push(chunk);
  assert.ok(chunks.length >= 3, `only ${chunks.length} chunks`);
  for (const c of chunks) {
    assert.equal(c.object, "chat.completion.chunk");
    assert.ok(c.id);
  }
  const text = chunks.map((c) => c.choices[0]?.delta?.content ?? "").join("");
  assert.match(text, /Stream me an answer/);
  const last = chunks.at(-1);
  assert.equal(last.choices.length, 0, "the last chunk is the usage chunk");
  assert.ok(last.usage.completion_tokens > 0);
  assert.equal(chunks.at(-2).choices[0].finish_reason, "stop");
});

test("streamed chat completion without usage", async () => {
  const stream = await client.chat.completions.create({
    model: "gpt-4o-mini",
    messages: [{ role: "user", content: "no usage please" }],
    stream: true,
  });
  let n = 0;
  for await (const chunk of stream) {
    n++;
    assert.equal(chunk.choices.length, 1);
    assert.ok(!chunk.usage);
  }
  assert.ok(n >= 2);
});

test("stream helper assembles the final message", async () => {
  const runner = client.chat.completions.stream({
    model: "gpt-4o-mini",
    messages: [{ role: "user", content: "assemble me" }],
  });
  const final = await runner.finalChatCompletion();
  assert.match(final.choices[0].message.content, /assemble me/);
});

test("embeddings", async () => {
  const res = await client.embeddings.create({ model: "text-embedding-3-small", input: ["one", "two"] });
  assert.equal(res.data.length, 2);
  assert.ok(res.data[0].embedding.length > 0);
  assert.equal(res.data[1].index, 1);
});

test("model list", async () => {
  const ids = [];
  for await (const m of client.models.list()) ids.push(m.id);
  assert.deepEqual(ids, ["gpt-4o", "gpt-4o-mini", "text-embedding-3-small"]);
  const m = await client.models.retrieve("gpt-4o");
  assert.equal(m.id, "gpt-4o");
});

test("unknown model is a NotFoundError", async () => {
  await assert.rejects(
    client.chat.completions.create({ model: "gpt-nonexistent", messages: [{ role: "user", content: "hi" }] }),
    (err) => err instanceof OpenAI.NotFoundError && err.status === 404 && err.code === "model_not_found",
  );
  await assert.rejects(client.models.retrieve("gpt-nonexistent"), OpenAI.NotFoundError);
});

test("bad request is a BadRequestError naming the field", async () => {
  await assert.rejects(
    client.chat.completions.create({ model: "gpt-4o-mini", messages: [] }),
    (err) => err instanceof OpenAI.BadRequestError && err.status === 400 && err.param === "messages",
  );
});

test("wrong token is an AuthenticationError", async () => {
  const wrong = new OpenAI({ baseURL, apiKey: "sk-not-the-token", maxRetries: 0 });
  await assert.rejects(wrong.models.list(), (err) => err instanceof OpenAI.AuthenticationError && err.status === 401);
  await assert.rejects(
    wrong.chat.completions.create({ model: "gpt-4o-mini", messages: [{ role: "user", content: "hi" }] }),
    (err) => err instanceof OpenAI.AuthenticationError && !String(err.message).includes(token),
  );
});

test("missing token is a 401 in OpenAI's error shape", async () => {
  const res = await fetch(`${baseURL}/models`);
  assert.equal(res.status, 401);
  const body = await res.json();
  assert.equal(body.error.code, "invalid_api_key");
});
