package sim

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestLogAndStats(t *testing.T) {
	clk := newClock()
	s, ts := start(t, Options{
		Accounts: []Account{{Name: "a", Key: "ka", RPM: 1}, {Name: "b", Key: "kb"}},
		Now:      clk.Now,
	})
	openaiWire.call(t, ts.URL, "chat/completions", "ka", hello)                                       // ok
	openaiWire.call(t, ts.URL, "chat/completions", "ka", hello)                                       // 429
	azureWire.call(t, ts.URL, "chat/completions", "kb", streamHello)                                  // ok, stream
	openaiWire.call(t, ts.URL, "chat/completions", "kb", hello)                                       // ok, same body as the first
	openaiWire.call(t, ts.URL, "chat/completions", "nobody", hello)                                   // 401
	do(t, "GET", ts.URL+"/v1/models", nil, "")                                                        // 401, no key
	openaiWire.call(t, ts.URL, "embeddings", "kb", `{"model":"text-embedding-3-small","input":"hi"}`) // ok

	sum := func(body string) string { h := sha256.Sum256([]byte(body)); return hex.EncodeToString(h[:]) }
	chat := helloUsage(t)
	t0 := clk.Now()
	want := []Record{
		{Time: t0, Account: "a", Wire: "openai", Path: "/v1/chat/completions", Model: "gpt-4o-mini", Status: 200, PromptTokens: chat.PromptTokens, CompletionTokens: chat.CompletionTokens, Charged: chat.TotalTokens, BodySHA256: sum(hello)},
		{Time: t0, Account: "a", Wire: "openai", Path: "/v1/chat/completions", Model: "gpt-4o-mini", Status: 429, BodySHA256: sum(hello)},
		{Time: t0, Account: "b", Wire: "azure", Path: "/openai/deployments/gpt-4o-mini/chat/completions", Query: "api-version=2024-10-21", Model: "gpt-4o-mini", Status: 200, Stream: true, PromptTokens: chat.PromptTokens, CompletionTokens: chat.CompletionTokens, Charged: chat.TotalTokens, BodySHA256: sum(streamHello)},
		{Time: t0, Account: "b", Wire: "openai", Path: "/v1/chat/completions", Model: "gpt-4o-mini", Status: 200, PromptTokens: chat.PromptTokens, CompletionTokens: chat.CompletionTokens, Charged: chat.TotalTokens, BodySHA256: sum(hello)},
		{Time: t0, Wire: "openai", Path: "/v1/chat/completions", Status: 401, BodySHA256: sum(hello)},
		{Time: t0, Wire: "openai", Path: "/v1/models", Status: 401, BodySHA256: sum("")},
		{Time: t0, Account: "b", Wire: "openai", Path: "/v1/embeddings", Model: "text-embedding-3-small", Status: 200, PromptTokens: 1, Charged: 1, BodySHA256: sum(`{"model":"text-embedding-3-small","input":"hi"}`)},
	}
	if diff := cmp.Diff(want, s.Log()[:len(want)]); diff != "" {
		t.Errorf("log (-want +got):\n%s", diff)
	}
	wantStats := map[string]AccountStats{
		"a": {Requests: 2, OK: 1, RateLimited: 1, PromptTokens: chat.PromptTokens, CompletionTokens: chat.CompletionTokens},
		"b": {Requests: 3, OK: 3, PromptTokens: 2*chat.PromptTokens + 1, CompletionTokens: 2 * chat.CompletionTokens},
		"":  {Requests: 2, Unauthorized: 2},
	}
	if diff := cmp.Diff(wantStats, s.Stats()); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}
}

// helloUsage returns the usage of the answer to hello, from a server of its own.
func helloUsage(t *testing.T) usage {
	_, ts := start(t, Options{Accounts: []Account{{Key: "k"}}})
	_, b := openaiWire.call(t, ts.URL, "chat/completions", "k", hello)
	return decode[completion](t, b).Usage
}

func TestLogLimit(t *testing.T) {
	tests := []struct {
		limit, requests int
		want            []int
	}{
		{3, 2, []int{0, 1}},
		{3, 3, []int{0, 1, 2}},
		{3, 7, []int{4, 5, 6}},
		{1, 4, []int{3}},
		{-1, 5, []int{0, 1, 2, 3, 4}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("limit %d requests %d", tt.limit, tt.requests), func(t *testing.T) {
			s, ts := start(t, Options{Accounts: []Account{{Key: "k"}}, LogLimit: tt.limit})
			for i := range tt.requests {
				openaiWire.call(t, ts.URL, "chat/completions", "k", fmt.Sprintf(`{"model":"m%d"}`, i))
			}
			var got []int
			for _, r := range s.Log() {
				var i int
				fmt.Sscanf(r.Model, "m%d", &i)
				if r.Status != 404 {
					t.Errorf("record %+v not finished", r)
				}
				got = append(got, i)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("records (-want +got):\n%s", diff)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		want string // error substring; "" = valid
	}{
		{"zero", Options{}, ""},
		{"defaults names", Options{Accounts: []Account{{Key: "a"}, {Key: "b"}}}, ""},
		{"empty key", Options{Accounts: []Account{{Name: "x"}}}, `account "x": empty key`},
		{"duplicate name", Options{Accounts: []Account{{Name: "x", Key: "a"}, {Name: "x", Key: "b"}}}, "duplicate name"},
		{"default name clash", Options{Accounts: []Account{{Name: "account-2", Key: "a"}, {Key: "b"}}}, "duplicate name"},
		{"duplicate key", Options{Accounts: []Account{{Name: "x", Key: "a"}, {Name: "y", Key: "a"}}}, "key already used"},
		{"negative rpm", Options{Accounts: []Account{{Key: "a", RPM: -1}}}, "negative rate limit"},
		{"negative ttft", Options{Accounts: []Account{{Key: "a", TTFT: -time.Second}}}, "negative latency"},
		{"fault above 1", Options{Accounts: []Account{{Key: "a", Faults: Faults{Reset: 2}}}}, "fault reset"},
		{"empty deployment model", Options{Deployments: map[string]string{"d": ""}}, "deployment"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.opts.Validate()
			if (err == nil) != (tt.want == "") || (err != nil && !strings.Contains(err.Error(), tt.want)) {
				t.Errorf("Validate() = %v, want %q", err, tt.want)
			}
		})
	}
	defer func() {
		if recover() == nil {
			t.Error("New with invalid options did not panic")
		}
	}()
	New(Options{Accounts: []Account{{Name: "x"}}})
}

func TestConcurrent(t *testing.T) {
	s, ts := start(t, Options{
		Accounts: []Account{{Name: "a", Key: "ka", RPM: 100000, TPM: 100000000}, {Name: "b", Key: "kb"}},
	})
	const workers, each = 8, 25
	var wg sync.WaitGroup
	for i := range workers {
		wg.Go(func() {
			for j := range each {
				key := []string{"ka", "kb"}[(i+j)%2]
				w := wires[j%2]
				var resp *http.Response
				switch j % 4 {
				case 0:
					resp, _ = w.call(t, ts.URL, "chat/completions", key, fmt.Sprintf(`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"question %d"}]}`, j))
				case 1:
					resp, _ = w.call(t, ts.URL, "chat/completions", key, streamHello)
				case 2:
					resp, _ = w.call(t, ts.URL, "embeddings", key, `{"model":"text-embedding-3-small","input":["a","b"],"dimensions":16}`)
				case 3:
					resp, _ = w.call(t, ts.URL, "models", key, "")
				}
				if resp.StatusCode != 200 {
					t.Errorf("worker %d request %d: status %d", i, j, resp.StatusCode)
				}
			}
		})
	}
	wg.Wait()
	st := s.Stats()
	if got := st["a"].OK + st["b"].OK; got != workers*each || st["a"].Requests+st["b"].Requests != workers*each {
		t.Errorf("stats %+v", st)
	}
	if n := len(s.Log()); n != workers*each {
		t.Errorf("%d records, want %d", n, workers*each)
	}
}

func BenchmarkChatZeroLatency(b *testing.B) {
	_, ts := start(b, Options{Accounts: []Account{{Key: "k"}}})
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	body := hello
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest("POST", ts.URL+"/v1/chat/completions", strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer k")
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			var buf [2048]byte
			for {
				if _, err := resp.Body.Read(buf[:]); err != nil {
					break
				}
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
}

func TestKeepBodies(t *testing.T) {
	for _, keep := range []bool{false, true} {
		t.Run(fmt.Sprint("keep ", keep), func(t *testing.T) {
			s, ts := start(t, Options{Accounts: []Account{{Key: "sk-secret"}}, KeepBodies: keep})
			azureWire.call(t, ts.URL, "chat/completions", "sk-secret", hello)
			do(t, "GET", ts.URL+"/v1/models", http.Header{"Authorization": {"Bearer sk-secret"}}, "")
			req, _ := http.NewRequest("POST", ts.URL+"/v1/responses?b=2&a=%20x", strings.NewReader("\x00not json"))
			req.Header.Set("Authorization", "Bearer sk-secret")
			req.Header.Set("Content-Type", "text/plain; charset=latin1")
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
			log := s.Log()
			want := []Record{
				{Query: "api-version=2024-10-21", ContentType: "application/json", Body: []byte(hello)},
				{Body: []byte{}},
				{Query: "b=2&a=%20x", ContentType: "text/plain; charset=latin1", Body: []byte("\x00not json")},
			}
			for i, r := range log {
				w := want[i]
				if !keep {
					w.ContentType, w.Body = "", nil
				}
				got := Record{Query: r.Query, ContentType: r.ContentType, Body: r.Body}
				if diff := cmp.Diff(w, got); diff != "" {
					t.Errorf("record %d (-want +got):\n%s", i, diff)
				}
			}
			// Bodies stay out of the JSON form of records.
			b, _ := json.Marshal(log)
			if strings.Contains(string(b), "Hello there") || strings.Contains(string(b), `"body"`) || strings.Contains(string(b), "sk-secret") {
				t.Errorf("records as JSON: %s", b)
			}
		})
	}
}

func TestQueryRedactsKeys(t *testing.T) {
	s, ts := start(t, Options{Accounts: []Account{{Name: "a", Key: "sk-secret/+key"}}})
	for _, q := range []string{
		"api-version=2024-10-21&api-key=whatever",
		"api-version=2024-10-21&x=sk-secret%2F%2Bkey",
		"KEY=abc&token=Bearer+sk-secret/%2Bkey",
		"subscription-key=1&keep=me",
	} {
		h := http.Header{}
		h.Set("api-key", "sk-secret/+key")
		do(t, "GET", ts.URL+"/openai/models?"+q, h, "")
	}
	want := []string{
		"api-version=2024-10-21&api-key=REDACTED",
		"api-version=2024-10-21&x=REDACTED",
		"KEY=REDACTED&token=REDACTED",
		"subscription-key=REDACTED&keep=me",
	}
	var got []string
	for _, r := range s.Log() {
		got = append(got, r.Query)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("queries (-want +got):\n%s", diff)
	}
}

func TestParseRoute(t *testing.T) {
	tests := []struct {
		method, path string
		want         route
	}{
		{"POST", "/v1/chat/completions", route{wire: WireOpenAI, endpoint: endpointChat, method: "POST"}},
		{"POST", "/v1/completions", route{wire: WireOpenAI, endpoint: endpointCompletions, method: "POST"}},
		{"POST", "/v1/moderations", route{wire: WireOpenAI, endpoint: endpointModerations, method: "POST"}},
		{"POST", "/v1/responses", route{wire: WireOpenAI, endpoint: endpointResponses, method: "POST"}},
		{"GET", "/v1/responses", route{wire: WireOpenAI, endpoint: endpointResponses, method: "POST"}},
		{"GET", "/v1/responses/resp_1", route{wire: WireOpenAI, endpoint: endpointResponseGet, method: "GET", id: "resp_1"}},
		{"DELETE", "/v1/responses/resp_1", route{wire: WireOpenAI, endpoint: endpointResponseDelete, method: "DELETE", id: "resp_1"}},
		{"PUT", "/v1/responses/resp_1", route{wire: WireOpenAI, endpoint: endpointResponseGet, method: "GET", id: "resp_1"}},
		{"POST", "/v1/responses/resp_1/cancel", route{wire: WireOpenAI, endpoint: endpointResponseCancel, method: "POST", id: "resp_1"}},
		{"GET", "/v1/responses/resp_1/input_items", route{wire: WireOpenAI, endpoint: endpointInputItems, method: "GET", id: "resp_1"}},
		{"GET", "/v1/responses/resp_1/other", route{wire: WireOpenAI}},
		{"GET", "/v1/responses/", route{wire: WireOpenAI}},
		{"GET", "/v1/responsesX", route{wire: WireOpenAI}},
		{"POST", "/openai/v1/responses", route{wire: WireAzure, endpoint: endpointResponses, method: "POST", versionOptional: true}},
		{"GET", "/openai/v1/responses/r/input_items", route{wire: WireAzure, endpoint: endpointInputItems, method: "GET", id: "r", versionOptional: true}},
		{"GET", "/openai/v1/models", route{wire: WireAzure, versionOptional: true}},
		{"POST", "/openai/responses", route{wire: WireAzure, endpoint: endpointResponses, method: "POST"}},
		{"DELETE", "/openai/responses/r", route{wire: WireAzure, endpoint: endpointResponseDelete, method: "DELETE", id: "r"}},
		{"POST", "/openai/deployments/d/chat/completions", route{wire: WireAzure, endpoint: endpointChat, method: "POST", deployment: "d"}},
		{"POST", "/openai/deployments/d/responses", route{wire: WireAzure, deployment: "d"}},
		{"POST", "/openai/deployments/d/completions", route{wire: WireAzure, deployment: "d"}},
		{"POST", "/responses", route{}},
	}
	for _, tt := range tests {
		if got := parseRoute(tt.method, tt.path); got != tt.want {
			t.Errorf("parseRoute(%s %s) = %+v, want %+v", tt.method, tt.path, got, tt.want)
		}
	}
}
