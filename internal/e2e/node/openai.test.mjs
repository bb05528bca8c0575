// What this proves: a program written for OpenAI with the official `openai`
// npm package (the newest version, pinned in package.json) works against
// lbgptd's OpenAI-compatible HTTP endpoint unchanged, only its base URL and key
// replaced: chat (plain, streamed with and without usage, the stream helper),
// tools over two turns, structured output parsed with zod, fields lbgpt does
// not know passed through, embeddings (float and base64), the model list, the
// Responses API (plain, streamed, a previous_response_id chain kept on one
// backend, retrieve, input items, delete), the cache seen through lbgpt's
// X-Lbgpt-* headers (an exact hit; a regenerate with Cache-Control: no-cache),
// the upstream's x-request-id, and errors as the SDK's own error classes.
//
// Run by internal/e2e (TestHTTPNodeClients/openai) with Node >= 22 from
// node_modules/.bin/node, against lbgptd on lbgpt-sim with TWO backends
// (LBGPT_BACKENDS, on two simulator accounts) balanced round-robin, and with
// LBGPT_BASE_URL (http://127.0.0.1:PORT/v1) and LBGPT_TOKEN set.
import { test } from "node:test";
import assert from "node:assert/strict";
import OpenAI from "openai";
import { zodResponseFormat } from "openai/helpers/zod";
import { z } from "zod";

const baseURL = process.env.LBGPT_BASE_URL;
const token = process.env.LBGPT_TOKEN;
const backends = (process.env.LBGPT_BACKENDS ?? "").split(",").filter(Boolean);
assert.ok(baseURL && token && backends.length === 2, "LBGPT_BASE_URL, LBGPT_TOKEN and two LBGPT_BACKENDS are set by the Go test");
// No SDK retries: a failure shows as itself, at once (the retry budget has its own test).
const client = new OpenAI({ baseURL, apiKey: token, maxRetries: 0 });

// assertMeta checks lbgpt's metadata headers on an answer from upstream.
function assertMeta(headers, cache = "miss") {
  assert.ok(backends.includes(headers.get("x-lbgpt-backend")), `x-lbgpt-backend ${headers.get("x-lbgpt-backend")} is one of ${backends}`);
  assert.equal(headers.get("x-lbgpt-attempts"), "1");
  assert.equal(headers.get("x-lbgpt-cache"), cache);
}

// ---- chat completions ----

test("plain chat completion", async () => {
  const { data, response } = await client.chat.completions
    .create({ model: "gpt-4o-mini", messages: [{ role: "user", content: "What is a load balancer?" }] })
    .withResponse();
  assert.equal(response.status, 200);
  assert.equal(data.object, "chat.completion");
  assert.match(data.choices[0].message.content, /What is a load balancer/);
  assert.equal(data.choices[0].finish_reason, "stop");
  assert.ok(data.usage.total_tokens > 0);
  assertMeta(response.headers);
});

test("x-request-id of the upstream is on the answer", async () => {
  const { data, response } = await client.chat.completions
    .create({ model: "gpt-4o-mini", messages: [{ role: "user", content: "Which request is this?" }] })
    .withResponse();
  assert.match(response.headers.get("x-request-id") ?? "", /^req_sim_\d+$/, "the simulator's x-request-id is forwarded");
  assert.equal(data._request_id, response.headers.get("x-request-id"), "the SDK exposes it as _request_id");
});

test("without previous_response_id, requests spread over both backends", async () => {
  // The daemon balances round-robin: this is what makes the chain test below
  // meaningful (without affinity a chain would be spread too).
  const seen = new Set();
  for (let i = 0; i < 4; i++) {
    const { response } = await client.chat.completions
      .create({ model: "gpt-4o-mini", messages: [{ role: "user", content: `spread request ${i}` }] })
      .withResponse();
    seen.add(response.headers.get("x-lbgpt-backend"));
  }
  assert.deepEqual([...seen].sort(), [...backends].sort());
});

test("streamed chat completion with a usage chunk; lbgpt's headers at stream start", async () => {
  const { data: stream, response } = await client.chat.completions
    .create({
      model: "gpt-4o",
      messages: [{ role: "user", content: "Stream me an answer" }],
      stream: true,
      stream_options: { include_usage: true },
    })
    .withResponse();
  assert.match(response.headers.get("content-type"), /^text\/event-stream/);
  // The daemon sends its metadata as headers with the first chunk: the
  // backend and attempts that made the stream start, and the cache outcome.
  assertMeta(response.headers);
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
  const { data: stream, response } = await client.chat.completions
    .create({ model: "gpt-4o-mini", messages: [{ role: "user", content: "no usage please" }], stream: true })
    .withResponse();
  assertMeta(response.headers);
  let n = 0;
  let text = "";
  for await (const chunk of stream) {
    n++;
    assert.equal(chunk.choices.length, 1);
    assert.ok(!chunk.usage);
    text += chunk.choices[0].delta?.content ?? "";
  }
  assert.ok(n >= 2);
  assert.match(text, /no usage please/);
});

test("stream helper assembles the final message", async () => {
  const runner = client.chat.completions.stream({
    model: "gpt-4o-mini",
    messages: [{ role: "user", content: "assemble me" }],
  });
  const final = await runner.finalChatCompletion();
  assert.match(final.choices[0].message.content, /assemble me/);
});

test("tools: a required tool call, then the tool's result gets text", async () => {
  const tools = [
    {
      type: "function",
      function: {
        name: "get_weather",
        description: "The current weather in a city",
        parameters: {
          type: "object",
          properties: { city: { type: "string" } },
          required: ["city"],
          additionalProperties: false,
        },
      },
    },
  ];
  const messages = [{ role: "user", content: "What is the weather in Paris?" }];
  const first = await client.chat.completions.create({ model: "gpt-4o-mini", messages, tools, tool_choice: "required" });
  const choice = first.choices[0];
  assert.equal(choice.finish_reason, "tool_calls");
  assert.ok(choice.message.tool_calls?.length >= 1, "a tool call");
  const call = choice.message.tool_calls[0];
  assert.equal(call.type, "function");
  assert.equal(call.function.name, "get_weather");
  assert.ok(call.id);
  assert.equal(typeof JSON.parse(call.function.arguments), "object", "arguments are a JSON object");

  messages.push(choice.message, { role: "tool", tool_call_id: call.id, content: JSON.stringify({ celsius: 21, sky: "clear" }) });
  const second = await client.chat.completions.create({ model: "gpt-4o-mini", messages, tools });
  assert.equal(second.choices[0].finish_reason, "stop");
  assert.equal(typeof second.choices[0].message.content, "string");
  assert.ok(second.choices[0].message.content.length > 0, "text after the tool result");
  assert.ok(!second.choices[0].message.tool_calls?.length, "no further tool call");
});

test("structured output: chat.completions.parse with zodResponseFormat", async () => {
  const City = z.object({
    name: z.string(),
    country: z.string(),
    population: z.number().int(),
    landmarks: z.array(z.string()),
  });
  const completion = await client.chat.completions.parse({
    model: "gpt-4o-mini",
    messages: [{ role: "user", content: "Describe Paris as structured data." }],
    response_format: zodResponseFormat(City, "city"),
  });
  const message = completion.choices[0].message;
  assert.ok(!message.refusal, `refused: ${message.refusal}`);
  assert.equal(typeof message.parsed, "object");
  assert.ok(message.parsed !== null);
  // The SDK parsed the content; the schema accepts it as it is.
  assert.deepEqual(City.parse(message.parsed), message.parsed);
  assert.deepEqual(JSON.parse(message.content), message.parsed);
});

test("fields lbgpt does not know are passed through, not refused", async () => {
  const { response, data } = await client.chat.completions
    .create({
      model: "gpt-4o-mini",
      messages: [{ role: "user", content: "unknown fields ride along" }],
      prompt_cache_key: "x",
      modalities: ["text"],
    })
    .withResponse();
  assert.equal(response.status, 200);
  assert.match(data.choices[0].message.content, /unknown fields ride along/);
});

// ---- the cache, seen through lbgpt's headers ----

test("a repeat of a temperature 0 request is an exact cache hit", async () => {
  const req = { model: "gpt-4o-mini", temperature: 0, messages: [{ role: "user", content: "Cache me exactly, please." }] };
  const a = await client.chat.completions.create(req).withResponse();
  assert.equal(a.response.headers.get("x-lbgpt-cache"), "miss");
  const b = await client.chat.completions.create(req).withResponse();
  assert.equal(b.response.headers.get("x-lbgpt-cache"), "exact");
  assert.equal(b.data.choices[0].message.content, a.data.choices[0].message.content);
});

test("regenerate: Cache-Control: no-cache gets a new answer from upstream", async () => {
  // A sampled request (default temperature), as a chat UI's "regenerate"
  // button sends it again with the standard header.
  const req = { model: "gpt-4o-mini", messages: [{ role: "user", content: "Suggest a name for a cat." }] };
  const a = await client.chat.completions.create(req).withResponse();
  assert.equal(a.response.headers.get("x-lbgpt-cache"), "miss");
  const b = await client.chat.completions.create(req, { headers: { "Cache-Control": "no-cache" } }).withResponse();
  assert.equal(b.response.headers.get("x-lbgpt-cache"), "miss", "no-cache skips the cached answer");
  const idA = a.response.headers.get("x-request-id");
  const idB = b.response.headers.get("x-request-id");
  assert.match(idB ?? "", /^req_sim_\d+$/);
  assert.notEqual(idB, idA, "the second answer came from a new upstream request");
});

// ---- embeddings and models ----

test("embeddings, as the SDK asks by default (base64, decoded by the SDK)", async () => {
  const res = await client.embeddings.create({ model: "text-embedding-3-small", input: ["one", "two"] });
  assert.equal(res.data.length, 2);
  assert.ok(res.data[0].embedding.length > 0);
  assert.equal(res.data[1].index, 1);
});

test("embeddings: encoding_format float and base64 give the same vector", async () => {
  const input = "the same text, two encodings";
  const f = await client.embeddings.create({ model: "text-embedding-3-small", input, encoding_format: "float" });
  const floats = f.data[0].embedding;
  assert.ok(Array.isArray(floats) && floats.length > 0);
  assert.ok(floats.every((x) => typeof x === "number"));
  const b = await client.embeddings.create({ model: "text-embedding-3-small", input: [input], encoding_format: "base64" });
  const encoded = b.data[0].embedding;
  assert.equal(typeof encoded, "string", "asked for base64 explicitly, the SDK leaves the string as is");
  const buf = Buffer.from(encoded, "base64");
  const decoded = new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
  assert.equal(decoded.length, floats.length);
  for (let i = 0; i < floats.length; i++) assert.ok(Math.abs(decoded[i] - floats[i]) < 1e-6, `component ${i}: ${decoded[i]} vs ${floats[i]}`);
});

test("model list", async () => {
  const ids = [];
  for await (const m of client.models.list()) ids.push(m.id);
  assert.deepEqual(ids, ["gpt-4o", "gpt-4o-mini", "text-embedding-3-small"]);
  const m = await client.models.retrieve("gpt-4o");
  assert.equal(m.id, "gpt-4o");
});

// ---- the Responses API ----

function outputText(response) {
  return response.output
    .filter((o) => o.type === "message")
    .flatMap((o) => o.content)
    .filter((c) => c.type === "output_text")
    .map((c) => c.text)
    .join("");
}

test("responses: plain", async () => {
  const { data, response } = await client.responses
    .create({ model: "gpt-4o-mini", input: "What is a reverse proxy?" })
    .withResponse();
  assert.equal(data.object, "response");
  assert.equal(data.status, "completed");
  assert.ok(data.id);
  assert.equal(typeof data.output_text, "string");
  assert.ok(data.output_text.length > 0, "output_text is not empty");
  assert.ok(backends.includes(response.headers.get("x-lbgpt-backend")));
});

test("responses: streamed, the deltas make the completed response's text", async () => {
  const { data: stream, response } = await client.responses
    .create({ model: "gpt-4o-mini", input: "Stream a response, please.", stream: true })
    .withResponse();
  assert.match(response.headers.get("content-type"), /^text\/event-stream/);
  assert.ok(backends.includes(response.headers.get("x-lbgpt-backend")));
  const types = [];
  let deltas = "";
  let completed;
  for await (const event of stream) {
    types.push(event.type);
    if (event.type === "response.output_text.delta") deltas += event.delta;
    if (event.type === "response.completed") completed = event.response;
  }
  assert.equal(types[0], "response.created");
  assert.ok(types.filter((t) => t === "response.output_text.delta").length >= 2, `events: ${types}`);
  assert.ok(completed, `a response.completed event among ${types}`);
  assert.ok(deltas.length > 0);
  assert.equal(deltas, outputText(completed));
});

test("responses: a previous_response_id chain stays on one backend; retrieve, input items, delete", async () => {
  // Each turn's response is stored by the upstream account that made it, so
  // every later turn must go to that same backend although the daemon would
  // otherwise send consecutive requests to different ones.
  let previous;
  const used = [];
  const inputs = ["Turn one: remember the word 'lighthouse'.", "Turn two: what word did I ask you to remember?", "Turn three: spell it backwards."];
  for (const input of inputs) {
    const { data, response } = await client.responses
      .create({ model: "gpt-4o-mini", input, ...(previous ? { previous_response_id: previous.id } : {}) })
      .withResponse();
    assert.equal(data.status, "completed");
    assert.ok(data.output_text.length > 0);
    if (previous) {
      assert.equal(data.previous_response_id, previous.id);
      assert.notEqual(data.id, previous.id);
    }
    assert.equal(response.headers.get("x-lbgpt-attempts"), "1", "the turn went straight to the backend that holds its history");
    used.push(response.headers.get("x-lbgpt-backend"));
    previous = data;
  }
  assert.ok(backends.includes(used[0]));
  assert.deepEqual(used, [used[0], used[0], used[0]], "all three turns on the same backend");

  const got = await client.responses.retrieve(previous.id);
  assert.equal(got.id, previous.id);
  assert.equal(got.output_text, previous.output_text);

  const items = [];
  for await (const item of client.responses.inputItems.list(previous.id)) items.push(item);
  assert.ok(items.length >= 1, "input items are listed");
  for (const item of items) assert.ok(item.type, "every item has a type");
  assert.ok(
    items.some((i) => i.type === "message" && i.role === "user" && JSON.stringify(i.content).includes("spell it backwards")),
    `the last turn's input is among the items: ${JSON.stringify(items)}`,
  );

  await client.responses.delete(previous.id);
  await assert.rejects(client.responses.retrieve(previous.id), (err) => err instanceof OpenAI.NotFoundError && err.status === 404);
});

// ---- errors ----

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
