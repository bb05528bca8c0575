package provider

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// FuzzAskUsage: the one change a streamed chat request gets is
// stream_options.include_usage = true; every other member, and every byte
// outside stream_options, stays as the client sent it.
func FuzzAskUsage(f *testing.F) {
	for _, s := range []string{
		`{"model":"m","stream":true,"messages":[]}`,
		`{}`,
		` { "stream_options" : { "include_obfuscation" : false } , "x": 1e400 } `,
		`{"stream_options":null,"seed":123456789012345678901234567890}`,
		`{"stream_options":{"include_usage":false},"a":"\u00e9"}`,
		`{"stream_options":{"include_usage":true}}`,
		`{"stream_options":[1],"b":{}}`,
		`[1,2]`,
		`{"a":`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		out, err := askUsage(body)
		var in map[string]json.RawMessage
		if json.Unmarshal(body, &in) != nil {
			return // not an object: an error, or any bytes, but no panic
		}
		if err != nil {
			t.Fatalf("askUsage(%s): %v", body, err)
		}
		var got map[string]json.RawMessage
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("askUsage(%s) = %s: not JSON: %v", body, out, err)
		}
		// Every other member is byte for byte the client's.
		for k, v := range in {
			if k == "stream_options" {
				continue
			}
			if !bytes.Equal(got[k], v) {
				t.Errorf("member %q changed: %s -> %s", k, v, got[k])
			}
		}
		opts, had := in["stream_options"]
		var o map[string]json.RawMessage
		isObject := json.Unmarshal(opts, &o) == nil && o != nil
		switch {
		case had && !isObject && string(bytes.TrimSpace(opts)) != "null":
			if !bytes.Equal(out, body) {
				t.Errorf("a stream_options that is no object was changed: %s -> %s", body, out)
			}
			return
		case !had:
			if !bytes.HasSuffix(out, body[bytes.IndexByte(body, '{')+1:]) {
				t.Errorf("the client's bytes after the added member changed: %s -> %s", body, out)
			}
		}
		var gotOpts map[string]json.RawMessage
		if err := json.Unmarshal(got["stream_options"], &gotOpts); err != nil || string(gotOpts["include_usage"]) != "true" {
			t.Fatalf("stream_options = %s, want include_usage true", got["stream_options"])
		}
		for k, v := range o {
			if k != "include_usage" && !cmp.Equal(gotOpts[k], v) {
				t.Errorf("stream option %q changed: %s -> %s", k, v, gotOpts[k])
			}
		}
	})
}
