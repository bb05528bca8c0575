// Package wire converts OpenAI answers between their plain and streamed forms.
//
// The proxy caches an answer exactly as the upstream sent it: the JSON body
// of a plain (non-streamed) request, or the list of server-sent-event data
// payloads of a streamed one. When a request asks for a cached answer in the
// other form, this package converts it, and the conversion is faithful:
//
//   - every field the upstream sent is kept, including fields this package
//     does not know (vendor extensions, fields OpenAI adds later);
//   - no field is invented: no Azure content_filter_results, no zero usage,
//     no "created": 0, no "refusal": null that the upstream did not send.
//
// For Chat Completions, AssembleChat folds the chat.completion.chunk payloads
// of a stream into the chat.completion a plain request would have received,
// and ChatChunks cuts a chat.completion into the chunks a streaming request
// would have received. For the Responses API, AssembleResponse takes the
// response carried by a stream's terminal event, and ResponseEvents replays a
// response object as the event sequence OpenAI sends.
//
// A round trip through the other form gives the answer back: for a
// well-formed completion c, AssembleChat(ChatChunks(c, true)) equals c as
// JSON, and AssembleResponse(ResponseEvents(r)) equals r. Converting a
// stream to the plain form and back gives an equivalent stream, not the same
// one: how the upstream cut the text into deltas is not recorded in the plain
// form, so ChatChunks and ResponseEvents cut it themselves (one delta per
// logprobs token when the logprobs spell the text, else pieces of at most 64
// bytes cut at rune boundaries), and what exists only in a stream is dropped
// (the "obfuscation" padding, "usage": null on every chunk).
//
// Numbers are never decoded: they reach the output byte for byte as the
// upstream wrote them, however long or precise. Output is compact JSON, so
// every payload fits on one SSE data line, with the keys of each object
// OpenAI defines in OpenAI's order and all others sorted, so that output is
// deterministic. Malformed input gives an error, never a panic.
package wire
