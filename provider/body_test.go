package provider

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"
)

// fidelityBodies are requests a proxy must pass on untouched: fields lbgpt
// does not know, content parts it does not model, values a typed struct
// would drop or round, odd whitespace and key order.
var fidelityBodies = []struct{ name, body string }{
	{"unknown fields", `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"x_vendor":{"a":[1,"b",null]},"prediction":{"type":"content","content":"x"}}`},
	{"file content part", `{"model":"gpt-4o","messages":[{"role":"user","content":[{"type":"text","text":"read"},{"type":"file","file":{"filename":"a.pdf","file_data":"data:application/pdf;base64,JVBERi0x"}}]}]}`},
	{"max_completion_tokens 0", `{"model":"o3-mini","messages":[{"role":"user","content":"hi"}],"max_completion_tokens":0,"temperature":0,"n":1,"logprobs":false}`},
	{"20-digit integer", `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"seed":12345678901234567890,"x":1.0e+2,"y":-0.000}`},
	{"odd whitespace and key order", "{\n\t\"messages\" :[ {\"content\":\"hi\",  \"role\":\"user\"} ],\r\n  \"model\"  :  \"gpt-4o\" ,\"stream\":false }\n"},
	{"unicode escapes", `{"model":"gpt-4o","messages":[{"role":"user","content":"\u00e9\ud83d\ude00 <&> \/"}]}`},
	{"duplicate keys", `{"model":"a","model":"gpt-4o","messages":[]}`},
	{"stream_options in a plain call", `{"model":"gpt-4o","messages":[],"stream_options":{"include_usage":false}}`},
	{"not json", `model=gpt-4o&messages=hi`},
}

// TestSendBodyVerbatim: what the upstream receives from Send is the call's
// body, byte for byte, on every wire and route.
func TestSendBodyVerbatim(t *testing.T) {
	rc, srv := recording(t, nil)
	providers := map[string]*Provider{
		"openai": newProvider(t, openaiBackend(srv.URL)),
		"azure":  newProvider(t, azureBackend(srv.URL)),
	}
	for pname, p := range providers {
		for _, path := range []string{PathChat, PathEmbeddings, "moderations"} {
			for _, tt := range fidelityBodies {
				t.Run(pname+"/"+path+"/"+tt.name, func(t *testing.T) {
					c := Call{Path: path, Model: "gpt-4o", Body: []byte(tt.body)}
					if _, err := p.Send(t.Context(), c); err != nil {
						t.Fatal(err)
					}
					if got := rc.last(t).Body; string(got) != tt.body {
						t.Errorf("upstream got\n%q\nwant\n%q", got, tt.body)
					}
				})
			}
		}
	}
	// The Responses API on OpenAI, whole and streamed: not a chat, so no
	// stream_options either.
	p := providers["openai"]
	for _, tt := range fidelityBodies {
		t.Run("openai/responses/"+tt.name, func(t *testing.T) {
			c := Call{Path: PathResponses, Model: "gpt-4o", Body: []byte(tt.body)}
			if _, err := p.Send(t.Context(), c); err != nil {
				t.Fatal(err)
			}
			if got := rc.last(t).Body; string(got) != tt.body {
				t.Errorf("upstream got\n%q\nwant\n%q", got, tt.body)
			}
		})
	}
}

// TestOpenResponsesBodyVerbatim: a streamed Responses call keeps its body
// (no stream_options: that is a chat option).
func TestOpenResponsesBodyVerbatim(t *testing.T) {
	rc, srv := recording(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "event: response.completed\ndata: {\"type\":\"response.completed\"}\n\n")
	})
	p := newProvider(t, openaiBackend(srv.URL))
	body := `{ "model":"gpt-4o", "input":"hi", "stream":true, "seed":12345678901234567890 }`
	s, err := p.Open(t.Context(), Call{Path: PathResponses, Model: "gpt-4o", Body: []byte(body)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := drain(s); err != io.EOF {
		t.Errorf("stream ended with %v, want io.EOF", err)
	}
	if got := rc.last(t).Body; string(got) != body {
		t.Errorf("upstream got %s, want %s", got, body)
	}
}

// TestStreamAsksUsage: a streamed chat call reaches the upstream with
// stream_options.include_usage true and every other byte as the client
// sent it.
func TestStreamAsksUsage(t *testing.T) {
	const rest = `"model":"gpt-4o","messages":[{"role":"user","content":[{"type":"file","file":{"file_id":"file-1"}}]}],"seed":12345678901234567890,"max_completion_tokens":0,"stream":true,"x_unknown":{"stream_options":null}`
	tests := []struct {
		name, body, want string
	}{
		{"absent: added at the start", `{` + rest + `}`, `{"stream_options":{"include_usage":true},` + rest + `}`},
		{"absent, odd whitespace", "{ \n  " + rest + " }", "{\"stream_options\":{\"include_usage\":true}, \n  " + rest + " }"},
		{"absent, leading whitespace", "\n {" + rest + "}", "\n {\"stream_options\":{\"include_usage\":true}," + rest + "}"},
		{"empty object", `{}`, `{"stream_options":{"include_usage":true}}`},
		{"empty object with spaces", `{ }`, `{"stream_options":{"include_usage":true} }`},
		{"only nested", `{"metadata":{"stream_options":null}}`, `{"stream_options":{"include_usage":true},"metadata":{"stream_options":null}}`},
		{"null: replaced", `{"model":"gpt-4o","stream_options":null,"stream":true}`, `{"model":"gpt-4o","stream_options":{"include_usage":true},"stream":true}`},
		{"null with spaces", `{"model":"gpt-4o","stream_options" :  null , "stream":true}`, `{"model":"gpt-4o","stream_options" :  {"include_usage":true} , "stream":true}`},
		{"false: set", `{` + rest + `,"stream_options":{"include_usage":false}}`, `{` + rest + `,"stream_options":{"include_usage":true}}`},
		{"other keys kept", `{"model":"gpt-4o","stream_options":{"include_obfuscation":false,"x":[1, 2]},"stream":true}`,
			`{"model":"gpt-4o","stream_options":{"include_obfuscation":false,"include_usage":true,"x":[1, 2]},"stream":true}`},
		{"empty options", `{"model":"gpt-4o","stream_options":{}}`, `{"model":"gpt-4o","stream_options":{"include_usage":true}}`},
		{"already true: unchanged", `{ "model":"gpt-4o", "stream_options": { "include_usage" : true, "z":1 } ,"stream":true}`,
			`{ "model":"gpt-4o", "stream_options": { "include_usage" : true, "z":1 } ,"stream":true}`},
		{"not an object: left to the upstream", `{"model":"gpt-4o","stream_options":"yes"}`, `{"model":"gpt-4o","stream_options":"yes"}`},
	}
	rc, srv := recording(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: {\"choices\":[]}\n\ndata: [DONE]\n\n")
	})
	providers := map[string]*Provider{
		"openai": newProvider(t, openaiBackend(srv.URL)),
		"azure":  newProvider(t, azureBackend(srv.URL)),
	}
	for pname, p := range providers {
		for _, tt := range tests {
			t.Run(pname+"/"+tt.name, func(t *testing.T) {
				call := Call{Path: PathChat, Model: "gpt-4o", Body: []byte(tt.body)}
				s, err := p.Open(t.Context(), call)
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				defer s.Close()
				if _, err := drain(s); err != io.EOF {
					t.Errorf("stream ended with %v, want io.EOF", err)
				}
				got := rc.last(t).Body
				if string(got) != tt.want {
					t.Errorf("upstream got\n%s\nwant\n%s", got, tt.want)
				}
				if string(call.Body) != tt.body {
					t.Errorf("Open changed the caller's body: %s", call.Body)
				}
				if tt.name == "not an object: left to the upstream" {
					return
				}
				var v struct {
					StreamOptions struct {
						IncludeUsage bool `json:"include_usage"`
					} `json:"stream_options"`
				}
				if err := json.Unmarshal(got, &v); err != nil || !v.StreamOptions.IncludeUsage {
					t.Errorf("upstream got %s: include_usage not true (%v)", got, err)
				}
			})
		}
	}
	// A plain (whole) chat call is never changed, stream_options or not.
	for _, tt := range tests {
		p := providers["openai"]
		if _, err := p.Send(t.Context(), Call{Path: PathChat, Model: "gpt-4o", Body: []byte(tt.body)}); err != nil {
			t.Fatal(err)
		}
		if got := rc.last(t).Body; !bytes.Equal(got, []byte(tt.body)) {
			t.Errorf("%s: Send changed the body to %s", tt.name, got)
		}
	}
}

// TestSetModel: the splice that names the deployment in an Azure Responses
// body changes the top-level model's value only.
func TestSetModel(t *testing.T) {
	tests := []struct{ name, body, want string }{
		{"simple", `{"model":"gpt-4o","input":"hi"}`, `{"model":"dep","input":"hi"}`},
		{"last, spaces", `{"input":{"model":"gpt-4o"} , "model" : "gpt-4o" }`, `{"input":{"model":"gpt-4o"} , "model" : "dep" }`},
		{"no model", `{"input":"hi","n":12345678901234567890}`, `{"input":"hi","n":12345678901234567890}`},
		{"escaped value", `{"model":"gpt\u002d4o","x":1}`, `{"model":"dep","x":1}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := setModel([]byte(tt.body), "dep")
			if err != nil || string(got) != tt.want {
				t.Errorf("setModel(%s) = %s, %v; want %s", tt.body, got, err, tt.want)
			}
		})
	}
	for _, bad := range []string{``, `[]`, `{"model":`, `nope`} {
		if _, err := setModel([]byte(bad), "dep"); err == nil {
			t.Errorf("setModel(%q): no error", bad)
		}
	}
}
