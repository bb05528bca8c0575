package wire

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestAssembleResponseRecorded checks that the response of a recorded-style
// stream is the completed event's "response", byte for byte.
func TestAssembleResponseRecorded(t *testing.T) {
	events := readSSE(t, "response_stream.sse")
	got, err := AssembleResponse(events)
	if err != nil {
		t.Fatal(err)
	}
	last := events[len(events)-1].Data
	const prefix = `{"type":"response.completed","sequence_number":30,"response":`
	if !bytes.HasPrefix(last, []byte(prefix)) || !bytes.HasSuffix(last, []byte("}")) {
		t.Fatalf("fixture's last event: %.100s", last)
	}
	if want := last[len(prefix) : len(last)-1]; !bytes.Equal(got, want) {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

// TestResponseEventsRecorded replays the recorded response: the same events
// as the recording, but for how the text is cut into deltas and the
// obfuscation padding.
func TestResponseEventsRecorded(t *testing.T) {
	recorded := readSSE(t, "response_stream.sse")
	response, err := AssembleResponse(recorded)
	if err != nil {
		t.Fatal(err)
	}
	events, err := ResponseEvents(response)
	if err != nil {
		t.Fatal(err)
	}
	checkEvents(t, response, events)
	want, got := withoutDeltas(t, recorded), withoutDeltas(t, events)
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("events but deltas (-recorded +replayed):\n%s", d)
	}
	back, err := AssembleResponse(events)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(back, response) {
		t.Errorf("round trip gave\n%s\nwant\n%s", back, response)
	}
}

// withoutDeltas decodes events, leaving out delta events and sequence
// numbers.
func withoutDeltas(t *testing.T, events []Event) []any {
	var out []any
	for _, e := range events {
		if strings.HasSuffix(e.Name, ".delta") {
			continue
		}
		v, err := decode(e.Data)
		if err != nil {
			t.Fatal(err)
		}
		delete(v.(map[string]any), "sequence_number")
		out = append(out, v)
	}
	return out
}

// checkEvents checks a stream ResponseEvents wrote for response: numbered
// one-line events named by their type, created and in_progress first, the
// terminal event last, and deltas that spell what their done event says.
func checkEvents(t testing.TB, response []byte, events []Event) {
	t.Helper()
	if len(events) < 3 {
		t.Fatalf("%d events", len(events))
	}
	spelled := map[string]string{} // by location: the concatenated deltas
	for i, e := range events {
		if bytes.ContainsAny(e.Data, "\r\n") {
			t.Fatalf("event %d is not one line: %q", i, e.Data)
		}
		m, ok := member(t, e.Data).(map[string]any)
		if !ok || m["type"] != e.Name || fmt.Sprint(m["sequence_number"]) != fmt.Sprint(i) {
			t.Fatalf("event %d (%s): %s", i, e.Name, e.Data)
		}
		loc := fmt.Sprint(m["output_index"], "/", m["content_index"])
		switch typ, _ := strings.CutSuffix(e.Name, ".delta"); {
		case e.Name != typ:
			spelled[typ+loc] += m["delta"].(string)
		case e.Name == "response.output_text.done":
			checkSpelled(t, spelled, "response.output_text"+loc, m["text"])
		case e.Name == "response.refusal.done":
			checkSpelled(t, spelled, "response.refusal"+loc, m["refusal"])
		case e.Name == "response.function_call_arguments.done":
			checkSpelled(t, spelled, "response.function_call_arguments"+loc, m["arguments"])
		}
	}
	for i, name := range []string{"response.created", "response.in_progress"} {
		if events[i].Name != name || member(t, events[i].Data, "response", "status") != "in_progress" {
			t.Errorf("event %d: %s", i, events[i].Data)
		}
	}
	last := events[len(events)-1]
	if want := "response." + member(t, response, "status").(string); last.Name != want {
		t.Errorf("last event %s, want %s", last.Name, want)
	}
}

func checkSpelled(t testing.TB, spelled map[string]string, key string, done any) {
	t.Helper()
	if s, ok := done.(string); ok && spelled[key] != s {
		t.Errorf("%s: deltas spell %q, done says %q", key, spelled[key], s)
	}
}

var responseRoundTrips = map[string]string{
	"incomplete with refusal and logprobs": `{"id":"resp_1","object":"response","created_at":1767225700,"status":"incomplete","error":null,"incomplete_details":{"reason":"max_output_tokens"},"model":"gpt-4.1","output":[
		{"id":"msg_1","type":"message","status":"incomplete","role":"assistant","content":[
			{"type":"output_text","annotations":[{"type":"url_citation","start_index":0,"end_index":2,"url":"https://example.com","title":"x"}],"logprobs":[{"token":"Hé","logprob":-1.2345678901234567e-05,"bytes":[72,195,169],"top_logprobs":[]},{"token":"llo","logprob":-0.5,"bytes":[108,108,111],"top_logprobs":[]}],"text":"Héllo"},
			{"type":"refusal","refusal":"` + strings.Repeat("no ", 40) + `"},
			{"type":"x_future_part","data":[1,2]}]}],
		"usage":{"input_tokens":1,"output_tokens":2,"total_tokens":3},"x_vendor":123456789012345678901234567890}`,
	"failed": `{"id":"resp_2","object":"response","created_at":1,"status":"failed","error":{"code":"server_error","message":"boom"},"output":[],"usage":null}`,
	"tools and reasoning": `{"id":"resp_3","object":"response","created_at":1,"status":"completed","output":[
		{"id":"rs_1","type":"reasoning","summary":[{"type":"summary_text","text":"Thinking."}],"encrypted_content":"gAAA"},
		{"id":"ws_1","type":"web_search_call","status":"completed","action":{"type":"search","query":"weather"}},
		{"id":"fc_1","type":"function_call","status":"completed","arguments":"{\"q\":\"` + strings.Repeat("日本", 20) + `\"}","call_id":"call_1","name":"f"},
		{"id":"msg_2","type":"message","status":"completed","role":"assistant","content":[{"type":"output_text","annotations":[],"text":""}]}],
		"usage":{"input_tokens":1,"output_tokens":2,"total_tokens":3}}`,
}

func TestResponseRoundTrip(t *testing.T) {
	for name, r := range responseRoundTrips {
		t.Run(name, func(t *testing.T) {
			events, err := ResponseEvents([]byte(r))
			if err != nil {
				t.Fatal(err)
			}
			checkEvents(t, []byte(r), events)
			got, err := AssembleResponse(events)
			if err != nil {
				t.Fatal(err)
			}
			if d := jsonDiff(t, []byte(r), got); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}

// TestResponseEventsText checks how text deltas are cut: by logprobs token
// when the tokens spell the text, else in pieces of at most 64 bytes.
func TestResponseEventsText(t *testing.T) {
	events, err := ResponseEvents([]byte(responseRoundTrips["incomplete with refusal and logprobs"]))
	if err != nil {
		t.Fatal(err)
	}
	var text, refusal []string
	for _, e := range events {
		switch e.Name {
		case "response.output_text.delta":
			text = append(text, member(t, e.Data, "delta").(string))
			if lp := member(t, e.Data, "logprobs").([]any); len(lp) != 1 {
				t.Errorf("delta without its token's logprobs: %s", e.Data)
			}
		case "response.refusal.delta":
			refusal = append(refusal, member(t, e.Data, "delta").(string))
		}
	}
	if !slices.Equal(text, []string{"Hé", "llo"}) {
		t.Errorf("text deltas %q", text)
	}
	if len(refusal) != 2 || len(refusal[0]) != maxPiece {
		t.Errorf("refusal deltas %q", refusal)
	}
	if s := string(events[len(events)-1].Data); !strings.HasPrefix(s, `{"type":"response.incomplete","sequence_number":`) {
		t.Errorf("terminal event %s", s)
	}
	if s := string(events[0].Data); !strings.Contains(s, `"status":"in_progress"`) || !strings.Contains(s, `"output":[]`) ||
		!strings.Contains(s, `"usage":null`) || !strings.Contains(s, `"incomplete_details":null`) {
		t.Errorf("response.created %s", s)
	}
}

func TestResponseErrors(t *testing.T) {
	ev := func(name, data string) Event { return Event{Name: name, Data: []byte(data)} }
	for _, events := range [][]Event{
		nil,
		{ev("response.created", `{"type":"response.created","response":{}}`)},
		{ev("", `not json`)},
		{ev("response.completed", `{"type":"response.completed","response":null}`)},
		{ev("response.completed", `{"response":[]}`)},
		{ev("response.failed", `[]`)},
	} {
		if got, err := AssembleResponse(events); err == nil {
			t.Errorf("AssembleResponse(%q) = %s, want an error", events, got)
		}
	}
	// The payload's type decides; the name stands in when it has none.
	got, err := AssembleResponse([]Event{ev("response.completed", `{"response":{"id":"a"}}`), ev("", `{"type":"response.completed","response": {"id": "b"} }`)})
	if err != nil || string(got) != `{"id": "b"}` {
		t.Errorf("AssembleResponse = %s, %v", got, err)
	}
	for _, r := range []string{``, `x`, `[]`, `{"status":"in_progress","output":[]}`, `{"status":"completed","output":{}}`, `{"status":"completed","output":[1]}`, `{"status":"completed","output":[{"type":"message","content":[1]}]}`} {
		if got, err := ResponseEvents([]byte(r)); err == nil {
			t.Errorf("ResponseEvents(%q) = %d events, want an error", r, len(got))
		}
	}
}
