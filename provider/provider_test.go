package provider

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lbgpt/lbgpt/config"
)

func TestSendOK(t *testing.T) {
	rc, srv := recording(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("x-ratelimit-remaining-requests", "42")
		w.Header().Set("x-request-id", "req-ok-1")
		time.Sleep(5 * time.Millisecond)
		io.WriteString(w, chatOK)
	})
	p := newProvider(t, openaiBackend(srv.URL))
	resp, err := p.Send(t.Context(), chatCall("gpt-4o-mini"))
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	got := rc.last(t)
	if got.Method != http.MethodPost || got.Path != "/v1/chat/completions" || got.RawQuery != "" {
		t.Errorf("request %s %s?%s", got.Method, got.Path, got.RawQuery)
	}
	if a := got.Header.Get("Authorization"); a != "Bearer "+openaiKey {
		t.Errorf("Authorization %q", a)
	}
	if ct, acc := got.Header.Get("Content-Type"), got.Header.Get("Accept"); ct != "application/json" || acc != "application/json" {
		t.Errorf("Content-Type %q, Accept %q", ct, acc)
	}
	if !bytes.Equal(got.Body, chatBody("gpt-4o-mini")) {
		t.Errorf("upstream got body %s", got.Body)
	}
	if string(resp.Body) != chatOK {
		t.Errorf("answer %s, want %s", resp.Body, chatOK)
	}
	obs := resp.Obs
	if obs.Status != 200 || obs.RateLimit.RemainingRequests != 42 || obs.RateLimit.RemainingTokens != Unknown || obs.RetryAfter != 0 {
		t.Errorf("observation %+v", obs)
	}
	if obs.Header.Get("x-request-id") != "req-ok-1" {
		t.Errorf("observation header %v lacks x-request-id", obs.Header)
	}
	if obs.Latency < 5*time.Millisecond || obs.Latency > 5*time.Second {
		t.Errorf("latency %v, want about 5ms", obs.Latency)
	}
	if p.Name() != "openai" {
		t.Errorf("Name() = %q", p.Name())
	}
}

// TestSendAnswerAsIs: a 2xx answer is the caller's to read. Send checks
// nothing in it, whatever it is; only the surrounding whitespace may go.
func TestSendAnswerAsIs(t *testing.T) {
	tests := []struct {
		name   string
		status int
		body   string
	}{
		{"json", 200, `{"id":"x", "n":12345678901234567890,"unknown":{"a":[1,2]}}`},
		{"not json", 200, "this is not json"},
		{"no choices", 200, `{"id":"x","object":"chat.completion","choices":[]}`},
		{"error object", 200, errorBody("upstream provider failed", "server_error", "")},
		{"empty", 200, ""},
		{"201", 201, `{"id":"file-1"}`},
		{"trailing newline", 200, chatOK + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := upstream(t, reply(tt.status, tt.body))
			p := newProvider(t, openaiBackend(srv.URL))
			body, obs, err := send(t.Context(), p, chatCall("gpt-4o-mini"))
			if err != nil {
				t.Fatalf("Send: %v", err)
			}
			if !bytes.Equal(bytes.TrimSpace(body), bytes.TrimSpace([]byte(tt.body))) {
				t.Errorf("answer %q, want %q", body, tt.body)
			}
			if obs.Status != tt.status {
				t.Errorf("status %d, want %d", obs.Status, tt.status)
			}
		})
	}
}

// TestMalformed: the caller's verdict on a 2xx answer is a server error that
// carries the observation, redacted.
func TestMalformed(t *testing.T) {
	srv := upstream(t, reply(200, `{"choices":[]}`, "retry-after-ms", "250"))
	p := newProvider(t, openaiBackend(srv.URL))
	resp, err := p.Send(t.Context(), chatCall("gpt-4o-mini"))
	if err != nil {
		t.Fatal(err)
	}
	e := p.Malformed(resp.Obs, "no choices for key "+openaiKey)
	if e.Kind != KindServer || e.Status != 200 || e.RetryAfter != 250*time.Millisecond || e.Backend != "openai" {
		t.Errorf("Malformed = %+v", e)
	}
	if !strings.Contains(e.Message, "malformed response") || !strings.Contains(e.Message, "no choices") || strings.Contains(e.Error(), openaiKey) {
		t.Errorf("message %q", e.Message)
	}
	if !errors.Is(e, errMalformed) {
		t.Errorf("%v is not errMalformed", e)
	}
}

// TestStatusKinds: every status maps to its Kind, with the Observation
// filled.
func TestStatusKinds(t *testing.T) {
	tests := []struct {
		name    string
		handler http.HandlerFunc
		kind    Kind
		status  int
		code    string
		message string // a substring of Error.Message
	}{
		{"400", reply(400, errorBody("Invalid value for 'temperature'", "invalid_request_error", "invalid_value")), KindBadRequest, 400, "invalid_value", "temperature"},
		{"400 model_not_found", reply(400, errorBody("The model `x` does not exist", "invalid_request_error", "model_not_found")), KindNotFound, 400, "model_not_found", "does not exist"},
		{"401", reply(401, errorBody("Incorrect API key provided", "invalid_request_error", "invalid_api_key")), KindAuth, 401, "invalid_api_key", "Incorrect API key"},
		{"403", reply(403, errorBody("Country, region, or territory not supported", "request_forbidden", "unsupported_country_region_territory")), KindAuth, 403, "unsupported_country_region_territory", "territory"},
		{"404", reply(404, errorBody("The model `gpt-9` does not exist or you do not have access to it.", "invalid_request_error", "model_not_found")), KindNotFound, 404, "model_not_found", "gpt-9"},
		{"404 azure deployment", reply(404, `{"error":{"code":"DeploymentNotFound","message":"The API deployment for this resource does not exist."}}`), KindNotFound, 404, "DeploymentNotFound", "deployment"},
		{"404 plain", reply(404, "404 page not found"), KindNotFound, 404, "", "page not found"},
		{"408", reply(408, ""), KindTimeout, 408, "", "Request Timeout"},
		{"409", reply(409, errorBody("conflict", "invalid_request_error", "")), KindBadRequest, 409, "", "conflict"},
		{"413", reply(413, "<html>too large</html>"), KindBadRequest, 413, "", "too large"},
		{"422", reply(422, errorBody("unprocessable", "invalid_request_error", "")), KindBadRequest, 422, "", "unprocessable"},
		{"429", reply(429, errorBody("Rate limit reached for requests", "requests", "rate_limit_exceeded"), "retry-after-ms", "1500"), KindRateLimited, 429, "rate_limit_exceeded", "Rate limit reached"},
		{"429 quota", reply(429, errorBody("You exceeded your current quota", "insufficient_quota", "insufficient_quota")), KindAuth, 429, "insufficient_quota", "quota"},
		{"500", reply(500, errorBody("The server had an error", "server_error", "")), KindServer, 500, "", "server had an error"},
		{"500 numeric code", reply(500, `{"error":{"message":"boom","type":"server_error","code":500}}`), KindServer, 500, "500", "boom"},
		{"502 html", reply(502, "<html><body>Bad gateway</body></html>"), KindServer, 502, "", "Bad gateway"},
		{"503", reply(503, errorBody("overloaded", "server_error", ""), "Retry-After", "2"), KindServer, 503, "", "overloaded"},
		{"504 empty", reply(504, ""), KindServer, 504, "", "Gateway Timeout"},
		{"302 redirect", reply(302, "", "Location", "http://elsewhere.invalid/v1/chat/completions"), KindServer, 302, "", "unexpected status 302"},
		{"long message", reply(500, errorBody(strings.Repeat("x", 5000), "server_error", "")), KindServer, 500, "", "xxx…"},
		{"429 body cut", func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Length", "1000")
			w.Header().Set("retry-after-ms", "300")
			w.WriteHeader(429)
			io.WriteString(w, `{"error":`)
			w.(http.Flusher).Flush()
			hijack(t, w, false)
		}, KindRateLimited, 429, "", `{"error":`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := upstream(t, tt.handler)
			p := newProvider(t, openaiBackend(srv.URL))
			_, obs, err := send(t.Context(), p, chatCall("gpt-4o-mini"))
			pe := asError(t, err)
			if pe.Kind != tt.kind || pe.Status != tt.status || pe.Code != tt.code || pe.Backend != "openai" {
				t.Errorf("got kind %q status %d code %q backend %q, want %q %d %q", pe.Kind, pe.Status, pe.Code, pe.Backend, tt.kind, tt.status, tt.code)
			}
			if !strings.Contains(pe.Message, tt.message) {
				t.Errorf("message %q does not contain %q", pe.Message, tt.message)
			}
			if len(pe.Message) > maxMessage+len("…") {
				t.Errorf("message of %d bytes", len(pe.Message))
			}
			if obs.Status != tt.status {
				t.Errorf("observation status %d, want %d", obs.Status, tt.status)
			}
			if pe.RetryAfter != obs.RetryAfter {
				t.Errorf("error RetryAfter %v, observation %v", pe.RetryAfter, obs.RetryAfter)
			}
			t.Log(err)
		})
	}
}

// TestErrorParamAndCode: the upstream's param and code land in the Error.
func TestErrorParamAndCode(t *testing.T) {
	tests := []struct {
		name, body  string
		code, param string
	}{
		{"string param", `{"error":{"message":"Invalid 'messages[0].content': string too long.","type":"invalid_request_error","param":"messages[0].content","code":"string_above_max_length"}}`, "string_above_max_length", "messages[0].content"},
		{"null param and code", `{"error":{"message":"bad","type":"invalid_request_error","param":null,"code":null}}`, "", ""},
		{"numeric code", `{"error":{"message":"bad","type":"invalid_request_error","param":"n","code":400}}`, "400", "n"},
		{"azure shape", `{"error":{"code":"InvalidPayload","message":"bad payload"}}`, "InvalidPayload", ""},
		{"not an object", `["error"]`, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := upstream(t, reply(400, tt.body))
			p := newProvider(t, openaiBackend(srv.URL))
			_, err := p.Send(t.Context(), chatCall("gpt-4o-mini"))
			pe := asError(t, err)
			if pe.Kind != KindBadRequest || pe.Code != tt.code || pe.Param != tt.param {
				t.Errorf("kind %q code %q param %q, want bad_request %q %q", pe.Kind, pe.Code, pe.Param, tt.code, tt.param)
			}
		})
	}
}

// TestObservationOnError: the headers of an error response reach the caller.
func TestObservationOnError(t *testing.T) {
	srv := upstream(t, reply(429, errorBody("Rate limit reached", "requests", "rate_limit_exceeded"),
		"retry-after-ms", "2500",
		"Retry-After", "3",
		"x-ratelimit-limit-requests", "60",
		"x-ratelimit-remaining-requests", "0",
		"x-ratelimit-reset-requests", "1m30.5s",
		"x-ratelimit-remaining-tokens", "90000",
		"x-request-id", "req-429",
	))
	p := newProvider(t, openaiBackend(srv.URL))
	_, obs, err := send(t.Context(), p, chatCall("gpt-4o-mini"))
	pe := asError(t, err)
	want := RateLimit{60, Unknown, 0, 90000, 90*time.Second + 500*time.Millisecond, Unknown}
	if obs.Status != 429 || obs.RetryAfter != 2500*time.Millisecond || obs.RateLimit != want || obs.Latency <= 0 {
		t.Errorf("observation %+v, want 429, 2.5s, %+v", obs, want)
	}
	if obs.Header.Get("x-request-id") != "req-429" || obs.Header.Get("Retry-After") != "3" {
		t.Errorf("observation header %v", obs.Header)
	}
	if pe.RetryAfter != 2500*time.Millisecond {
		t.Errorf("error RetryAfter %v", pe.RetryAfter)
	}
	if got := pe.Error(); got != "backend openai: rate limited (429 rate_limit_exceeded): Rate limit reached" {
		t.Errorf("Error() = %q", got)
	}
}

// TestRedaction: a 401 that echoes the key (masked, and verbatim) never puts
// it in the error, whichever way the error is printed or unwrapped.
func TestRedaction(t *testing.T) {
	masked := "sk-proj-" + strings.Repeat("*", 40) + "wxyz"
	tests := []struct {
		name   string
		b      func(url string) config.Backend
		status int
		body   string
		kind   Kind
	}{
		{"openai api error", openaiBackend, 401, errorBody("Incorrect API key provided: "+masked+". Also "+openaiKey+" and sk-other1234567890abcdef.", "invalid_request_error", "invalid_api_key"), KindAuth},
		{"openai raw body", openaiBackend, 401, "unauthorized: Bearer " + openaiKey + " " + masked, KindAuth},
		{"azure", func(url string) config.Backend {
			return config.Backend{Name: "azure", Type: config.TypeAzure, BaseURL: url, Key: azureKey, APIVersion: "2024-10-21"}
		}, 401, `{"error":{"code":"401","message":"Access denied: key ` + azureKey + ` is invalid"}}`, KindAuth},
		{"compatible verbatim key", func(url string) config.Backend {
			return config.Backend{Name: "local", Type: config.TypeOpenAICompatible, BaseURL: url + "/v1", Key: "plain-words-key"}
		}, 401, errorBody("key plain-words-key rejected", "auth", ""), KindAuth},
		{"param echoes the key", openaiBackend, 400, `{"error":{"message":"bad header ` + openaiKey + `","type":"invalid_request_error","param":"` + openaiKey + `","code":"x"}}`, KindBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := upstream(t, reply(tt.status, tt.body))
			b := tt.b(srv.URL)
			p := newProvider(t, b)
			_, obs, err := send(t.Context(), p, chatCall("gpt-4o-mini"))
			pe := asError(t, err)
			if pe.Kind != tt.kind {
				t.Errorf("kind %q, want %q", pe.Kind, tt.kind)
			}
			if !strings.Contains(pe.Message, redacted) {
				t.Errorf("message %q has nothing redacted", pe.Message)
			}
			printed := []string{
				err.Error(), fmt.Sprintf("%v|%+v|%#v", err, pe, obs), pe.Message,
			}
			for e := error(pe); e != nil; e = errors.Unwrap(e) {
				printed = append(printed, e.Error())
			}
			for _, s := range printed {
				for _, secret := range []string{b.Key.Reveal(), masked, "sk-other"} {
					if strings.Contains(s, secret) {
						t.Errorf("%q leaks %q", s, secret)
					}
				}
			}
		})
	}
}

// TestAzureShape: the deployment replaces the model in the path (or, on the
// Responses API, in the body), api-version is the configured one followed
// by the client's query, the key goes in api-key and nowhere else.
func TestAzureShape(t *testing.T) {
	rc, srv := recording(t, func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/openai/models":
			io.WriteString(w, `{"object":"list","data":[{"id":"gpt-4o","object":"model"}]}`)
		case strings.HasSuffix(r.URL.Path, "/embeddings"):
			io.WriteString(w, `{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.5,0.25]}]}`)
		default:
			io.WriteString(w, `{"id":"x"}`)
		}
	})
	p := newProvider(t, azureBackend(srv.URL))
	const (
		version   = "api-version=2024-12-01-preview"
		responses = `{ "input" : "hi",  "model" :  "gpt-4o" , "n":12345678901234567890, "metadata":{"model":"gpt-4o"}}`
	)
	tests := []struct {
		name      string
		call      Call
		method    string
		path      string
		query     string
		body      string // what the upstream must receive
		unchanged bool   // the body is the call's
	}{
		{"chat", chatCall("gpt-4o"), "POST", "/openai/deployments/prod-4o/chat/completions", version, "", true},
		{"chat unmapped", chatCall("unmapped"), "POST", "/openai/deployments/unmapped/chat/completions", version, "", true},
		{"chat with the client's query", Call{Path: PathChat, Model: "gpt-4o", Query: "trace=1", Body: chatBody("gpt-4o")},
			"POST", "/openai/deployments/prod-4o/chat/completions", version + "&trace=1", "", true},
		{"deployment escaped", chatCall("a/b c"), "POST", "/openai/deployments/a%2Fb%20c/chat/completions", version, "", true},
		{"embeddings", Call{Path: PathEmbeddings, Model: "text-embedding-3-small", Body: []byte(`{"model":"text-embedding-3-small","input":["x"]}`)},
			"POST", "/openai/deployments/emb-small/embeddings", version, "", true},
		{"responses", Call{Path: PathResponses, Model: "gpt-4o", Body: []byte(responses)},
			"POST", "/openai/responses", version,
			`{ "input" : "hi",  "model" :  "prod-4o" , "n":12345678901234567890, "metadata":{"model":"gpt-4o"}}`, false},
		{"responses unmapped", Call{Path: PathResponses, Model: "gpt-4.1", Body: []byte(`{"model":"gpt-4.1","input":"hi"}`)},
			"POST", "/openai/responses", version, "", true},
		{"get response", Call{Method: "GET", Path: "responses/resp_123", Query: "include[]=reasoning.encrypted_content&stream=false"},
			"GET", "/openai/responses/resp_123", version + "&include[]=reasoning.encrypted_content&stream=false", "", true},
		{"response input items", Call{Method: "GET", Path: "responses/resp_123/input_items", Query: "limit=5"},
			"GET", "/openai/responses/resp_123/input_items", version + "&limit=5", "", true},
		{"delete response", Call{Method: "DELETE", Path: "responses/resp_123"},
			"DELETE", "/openai/responses/resp_123", version, "", true},
		{"models", Call{Method: "GET", Path: PathModels}, "GET", "/openai/models", version, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := p.Send(t.Context(), tt.call); err != nil {
				t.Fatalf("Send: %v", err)
			}
			got := rc.last(t)
			if got.Method != tt.method || got.Path != tt.path || got.RawQuery != tt.query {
				t.Errorf("request %s %s?%s, want %s %s?%s", got.Method, got.Path, got.RawQuery, tt.method, tt.path, tt.query)
			}
			if got.Header.Get("api-key") != azureKey || got.Header.Get("Authorization") != "" {
				t.Errorf("api-key %q, Authorization %q: want the key in api-key only", got.Header.Get("api-key"), got.Header.Get("Authorization"))
			}
			want := tt.body
			if tt.unchanged {
				want = string(tt.call.Body)
			}
			if string(got.Body) != want {
				t.Errorf("upstream got body\n%s\nwant\n%s", got.Body, want)
			}
		})
	}
	models, _, err := p.Models(t.Context())
	if err != nil || len(models) != 1 || models[0] != "gpt-4o" {
		t.Fatalf("Models = %v, %v", models, err)
	}
	if n := rc.count(); n != len(tests)+1 {
		t.Errorf("upstream saw %d requests, want %d", n, len(tests)+1)
	}
}

func TestAzureDefaultAPIVersion(t *testing.T) {
	rc, srv := recording(t, nil)
	p := newProvider(t, config.Backend{Name: "azure", Type: config.TypeAzure, BaseURL: srv.URL, Key: azureKey})
	if _, err := p.Send(t.Context(), chatCall("gpt-4o-mini")); err != nil {
		t.Fatal(err)
	}
	if q := rc.last(t).RawQuery; q != "api-version="+config.DefaultAzureAPIVersion {
		t.Errorf("query %q, want api-version=%s", q, config.DefaultAzureAPIVersion)
	}
}

// TestAuthorizationHeader: an openai-compatible backend without a key sends
// no Authorization header at all.
func TestAuthorizationHeader(t *testing.T) {
	tests := []struct {
		name, key string
		want      []string // the Authorization values sent
	}{
		{"no key", "", nil},
		{"key", "local-key-1234", []string{"Bearer local-key-1234"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc, srv := recording(t, nil)
			p := newProvider(t, config.Backend{Name: "local", Type: config.TypeOpenAICompatible, BaseURL: srv.URL + "/v1/", Key: config.Secret(tt.key)})
			if _, err := p.Send(t.Context(), chatCall("llama")); err != nil {
				t.Fatal(err)
			}
			got := rc.last(t)
			if v := got.Header.Values("Authorization"); strings.Join(v, ",") != strings.Join(tt.want, ",") {
				t.Errorf("Authorization %q, want %q", v, tt.want)
			}
			if got.Header.Get("api-key") != "" {
				t.Errorf("api-key %q sent to a non-Azure backend", got.Header.Get("api-key"))
			}
			if got.Path != "/v1/chat/completions" {
				t.Errorf("path %s (the base URL's trailing slash is dropped)", got.Path)
			}
		})
	}
}

// TestRequestHeaders: Content-Type is the call's (JSON by default) and only
// with a body; Accept says whether a stream is wanted.
func TestRequestHeaders(t *testing.T) {
	rc, srv := recording(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Accept") == "text/event-stream" {
			w.Header().Set("Content-Type", "text/event-stream")
			io.WriteString(w, "event: response.completed\ndata: {}\n\n")
			return
		}
		io.WriteString(w, `{}`)
	})
	p := newProvider(t, openaiBackend(srv.URL))
	multipart := "--x\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n--x--\r\n"
	tests := []struct {
		name                string
		call                Call
		method, path, query string
		contentType, accept string
	}{
		{"json", chatCall("gpt-4o"), "POST", "/v1/chat/completions", "", "application/json", "application/json"},
		{"multipart", Call{Path: "audio/transcriptions", Model: "whisper-1", ContentType: "multipart/form-data; boundary=x", Body: []byte(multipart)},
			"POST", "/v1/audio/transcriptions", "", "multipart/form-data; boundary=x", "application/json"},
		{"get", Call{Method: "GET", Path: "responses/resp_1", Query: "include[]=file_search_call.results"},
			"GET", "/v1/responses/resp_1", "include[]=file_search_call.results", "", "application/json"},
		{"delete", Call{Method: "DELETE", Path: "responses/resp_1"}, "DELETE", "/v1/responses/resp_1", "", "", "application/json"},
		{"stream", Call{Path: PathResponses, Model: "gpt-4o", Body: []byte(`{"model":"gpt-4o","input":"hi","stream":true}`), Stream: true},
			"POST", "/v1/responses", "", "application/json", "text/event-stream"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.call.Stream {
				s, err := p.Open(t.Context(), tt.call)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := drain(s); err != io.EOF {
					t.Errorf("stream ended with %v", err)
				}
				s.Close()
			} else if _, err := p.Send(t.Context(), tt.call); err != nil {
				t.Fatal(err)
			}
			got := rc.last(t)
			if got.Method != tt.method || got.Path != tt.path || got.RawQuery != tt.query {
				t.Errorf("request %s %s?%s, want %s %s?%s", got.Method, got.Path, got.RawQuery, tt.method, tt.path, tt.query)
			}
			if ct := got.Header.Get("Content-Type"); ct != tt.contentType {
				t.Errorf("Content-Type %q, want %q", ct, tt.contentType)
			}
			if a := got.Header.Get("Accept"); a != tt.accept {
				t.Errorf("Accept %q, want %q", a, tt.accept)
			}
			if string(got.Body) != string(tt.call.Body) {
				t.Errorf("body %q, want %q", got.Body, tt.call.Body)
			}
		})
	}
}

// TestCannotSend: a call the Provider cannot put on the wire is a bad
// request, with nothing sent.
func TestCannotSend(t *testing.T) {
	rc, srv := recording(t, nil)
	oai := newProvider(t, openaiBackend(srv.URL))
	az := newProvider(t, azureBackend(srv.URL))
	tests := []struct {
		name string
		p    *Provider
		call Call
	}{
		{"azure chat without a model", az, Call{Path: PathChat, Body: []byte(`{"messages":[]}`)}},
		{"azure responses body not JSON", az, Call{Path: PathResponses, Model: "gpt-4o", Body: []byte(`model=gpt-4o`)}},
		{"azure responses body not an object", az, Call{Path: PathResponses, Model: "gpt-4o", Body: []byte(`["gpt-4o"]`)}},
		{"streamed chat body not JSON", oai, Call{Path: PathChat, Model: "gpt-4o", Body: []byte(`{"model":`), Stream: true}},
		{"streamed chat body not an object", oai, Call{Path: PathChat, Model: "gpt-4o", Body: []byte(`"hi"`), Stream: true}},
		{"bad method", oai, Call{Method: "GET OR POST", Path: PathModels}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var (
				obs Observation
				err error
			)
			if tt.call.Stream {
				var s *Stream
				s, err = tt.p.Open(t.Context(), tt.call)
				if s == nil {
					t.Fatal("Open returned no Stream")
				}
				obs = s.Observation()
				if _, nerr := s.Next(); nerr != err {
					t.Errorf("Next: %v, want %v", nerr, err)
				}
				s.Close()
			} else {
				_, obs, err = send(t.Context(), tt.p, tt.call)
			}
			pe := asError(t, err)
			if pe.Kind != KindBadRequest || pe.Status != 0 || obs.Status != 0 || obs.Header != nil || obs.RateLimit != unknownRateLimit {
				t.Errorf("got %q status %d, observation %+v; want bad_request, no response: %v", pe.Kind, pe.Status, obs, err)
			}
			t.Log(err)
		})
	}
	if n := rc.count(); n != 0 {
		t.Errorf("%d requests reached the upstream", n)
	}
}

// TestConcurrentObservations: calls running at once on one Provider each get
// the headers of their own response.
func TestConcurrentObservations(t *testing.T) {
	srv := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			User string `json:"user"`
		}
		json.NewDecoder(r.Body).Decode(&req)
		n, _ := strconv.Atoi(req.User)
		w.Header().Set("x-ratelimit-remaining-requests", strconv.Itoa(n))
		w.Header().Set("retry-after-ms", strconv.Itoa(n))
		w.Header().Set("x-request-id", "req-"+req.User)
		time.Sleep(time.Duration(n%5) * time.Millisecond)
		if n%3 == 0 {
			w.WriteHeader(429)
			io.WriteString(w, errorBody("slow down", "requests", "rate_limit_exceeded"))
			return
		}
		io.WriteString(w, chatOK)
	})
	p := newProvider(t, openaiBackend(srv.URL))
	var wg sync.WaitGroup
	for n := 1; n <= 48; n++ {
		wg.Go(func() {
			c := Call{Path: PathChat, Model: "gpt-4o-mini", Body: fmt.Appendf(nil, `{"model":"gpt-4o-mini","messages":[],"user":"%d"}`, n)}
			_, obs, err := send(t.Context(), p, c)
			wantStatus := 200
			if n%3 == 0 {
				wantStatus = 429
				if pe := asError(t, err); pe.RetryAfter != time.Duration(n)*time.Millisecond {
					t.Errorf("call %d: error RetryAfter %v", n, pe.RetryAfter)
				}
			} else if err != nil {
				t.Errorf("call %d: %v", n, err)
			}
			if obs.Status != wantStatus || obs.RateLimit.RemainingRequests != int64(n) || obs.RetryAfter != time.Duration(n)*time.Millisecond ||
				obs.Header.Get("x-request-id") != "req-"+strconv.Itoa(n) {
				t.Errorf("call %d: observation %+v", n, obs)
			}
		})
	}
	wg.Wait()
}

// TestTransportErrors: failures below HTTP.
func TestTransportErrors(t *testing.T) {
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()

	tests := []struct {
		name    string
		url     func(t *testing.T) string
		timeout time.Duration // 0: no deadline
		cancel  time.Duration // cancel the context after this
		kind    Kind
		status  int
	}{
		{"connection refused", func(*testing.T) string { return closedURL }, 0, 0, KindNetwork, 0},
		{"reset before response", func(t *testing.T) string {
			return upstream(t, func(w http.ResponseWriter, r *http.Request) { hijack(t, w, true) }).URL
		}, 0, 0, KindNetwork, 0},
		{"closed before response", func(t *testing.T) string {
			return upstream(t, func(w http.ResponseWriter, r *http.Request) { hijack(t, w, false) }).URL
		}, 0, 0, KindNetwork, 0},
		{"200 body cut", func(t *testing.T) string {
			return upstream(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Length", strconv.Itoa(len(chatOK)))
				io.WriteString(w, chatOK[:30])
				w.(http.Flusher).Flush()
				hijack(t, w, false)
			}).URL
		}, 0, 0, KindNetwork, 200},
		{"deadline before headers", func(t *testing.T) string {
			return upstream(t, hang).URL
		}, 50 * time.Millisecond, 0, KindTimeout, 0},
		{"deadline in body", func(t *testing.T) string {
			return upstream(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Length", strconv.Itoa(len(chatOK)))
				io.WriteString(w, chatOK[:30])
				w.(http.Flusher).Flush()
				hang(w, r)
			}).URL
		}, 50 * time.Millisecond, 0, KindTimeout, 200},
		{"deadline in an error body", func(t *testing.T) string {
			return upstream(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Length", "1000")
				w.WriteHeader(503)
				io.WriteString(w, `{"error":`)
				w.(http.Flusher).Flush()
				hang(w, r)
			}).URL
		}, 50 * time.Millisecond, 0, KindTimeout, 503},
		{"canceled before headers", func(t *testing.T) string {
			return upstream(t, hang).URL
		}, 0, 30 * time.Millisecond, KindCanceled, 0},
		{"canceled under a deadline", func(t *testing.T) string {
			return upstream(t, hang).URL
		}, time.Minute, 30 * time.Millisecond, KindCanceled, 0},
		{"canceled in body", func(t *testing.T) string {
			return upstream(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Length", strconv.Itoa(len(chatOK)))
				io.WriteString(w, chatOK[:30])
				w.(http.Flusher).Flush()
				hang(w, r)
			}).URL
		}, 0, 30 * time.Millisecond, KindCanceled, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newProvider(t, openaiBackend(tt.url(t)))
			ctx := t.Context()
			if tt.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.timeout)
				defer cancel()
			}
			if tt.cancel > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithCancel(ctx)
				time.AfterFunc(tt.cancel, cancel)
			}
			_, obs, err := send(ctx, p, chatCall("gpt-4o-mini"))
			pe := asError(t, err)
			if pe.Kind != tt.kind || pe.Status != tt.status || obs.Status != tt.status {
				t.Errorf("kind %q status %d (observed %d), want %q %d: %v", pe.Kind, pe.Status, obs.Status, tt.kind, tt.status, err)
			}
			switch tt.kind {
			case KindTimeout:
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("%v is not context.DeadlineExceeded", err)
				}
			case KindCanceled:
				if !errors.Is(err, context.Canceled) {
					t.Errorf("%v is not context.Canceled", err)
				}
			}
			if tt.status == 0 && (obs.RateLimit != unknownRateLimit || obs.Header != nil) {
				t.Errorf("no response but observation %+v", obs)
			}
			if strings.Contains(fmt.Sprintf("%v %+v", err, pe), openaiKey) {
				t.Errorf("%v leaks the key", err)
			}
			t.Log(err)
		})
	}
}

// TestNoTransportRetry: a POST the server received and then dropped is not
// sent again by net/http, even on a reused keep-alive connection. (net/http
// only replays a request on a reused connection when nothing of it was
// written, or when it is idempotent: GET, HEAD, or an Idempotency-Key header,
// which a Provider never sets.)
func TestNoTransportRetry(t *testing.T) {
	var calls, conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if calls.Add(1) == 2 {
			hijack(t, w, false) // the second request: read, then dropped
			return
		}
		io.WriteString(w, chatOK)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	p := newProvider(t, openaiBackend(srv.URL))
	if _, err := p.Send(t.Context(), chatCall("gpt-4o-mini")); err != nil {
		t.Fatal(err)
	}
	_, err := p.Send(t.Context(), chatCall("gpt-4o-mini"))
	if pe := asError(t, err); pe.Kind != KindNetwork {
		t.Errorf("kind %q, want network: %v", pe.Kind, err)
	}
	if n := calls.Load(); n != 2 {
		t.Errorf("upstream saw %d requests, want 2 (no transport retry)", n)
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections, want 1 (the second request reused the first's)", n)
	}
}

func TestEmbeddingsAndModels(t *testing.T) {
	const embeddings = `{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.5,0.25]}],"model":"text-embedding-3-small","usage":{"prompt_tokens":1,"total_tokens":1}}`
	rc, srv := recording(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("x-ratelimit-remaining-tokens", "7")
		switch r.URL.Path {
		case "/v1/embeddings":
			io.WriteString(w, embeddings)
		case "/v1/models":
			io.WriteString(w, `{"object":"list","data":[{"id":"gpt-4o","object":"model"},{"id":"","object":"model"},{"id":"gpt-4o-mini","object":"model"}]}`)
		default:
			http.NotFound(w, r)
		}
	})
	p := newProvider(t, openaiBackend(srv.URL))
	req := []byte(`{"model":"text-embedding-3-small","input":["x"],"dimensions":2}`)
	body, obs, err := send(t.Context(), p, Call{Path: PathEmbeddings, Model: "text-embedding-3-small", Body: req})
	if err != nil || string(body) != embeddings || obs.RateLimit.RemainingTokens != 7 {
		t.Errorf("embeddings = %s, %+v, %v", body, obs, err)
	}
	if got := rc.last(t); got.Path != "/v1/embeddings" || !bytes.Equal(got.Body, req) {
		t.Errorf("upstream got %s %s", got.Path, got.Body)
	}
	models, obs, err := p.Models(t.Context())
	if err != nil || strings.Join(models, ",") != "gpt-4o,gpt-4o-mini" || obs.Status != 200 || obs.RateLimit.RemainingTokens != 7 {
		t.Errorf("Models = %v, %+v, %v", models, obs, err)
	}
	if got := rc.last(t); got.Method != http.MethodGet || got.Path != "/v1/models" || len(got.Body) != 0 || got.Header.Get("Content-Type") != "" {
		t.Errorf("models request %s %s, body %q, Content-Type %q", got.Method, got.Path, got.Body, got.Header.Get("Content-Type"))
	}
}

func TestModelsErrors(t *testing.T) {
	tests := []struct {
		name    string
		handler http.HandlerFunc
		kind    Kind
		status  int
		message string
	}{
		{"not json", reply(200, "<html>hello</html>"), KindServer, 200, "malformed response"},
		{"401", reply(401, errorBody("Incorrect API key provided", "invalid_request_error", "invalid_api_key")), KindAuth, 401, "Incorrect API key"},
		{"503", reply(503, "", "Retry-After", "4"), KindServer, 503, "Service Unavailable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := upstream(t, tt.handler)
			p := newProvider(t, openaiBackend(srv.URL))
			models, obs, err := p.Models(t.Context())
			pe := asError(t, err)
			if models != nil || pe.Kind != tt.kind || pe.Status != tt.status || obs.Status != tt.status || !strings.Contains(pe.Message, tt.message) {
				t.Errorf("Models = %v, %+v, %v; want %q %d %q", models, obs, err, tt.kind, tt.status, tt.message)
			}
			if pe.RetryAfter != obs.RetryAfter {
				t.Errorf("RetryAfter %v, observed %v", pe.RetryAfter, obs.RetryAfter)
			}
		})
	}
}

func TestNew(t *testing.T) {
	tests := []struct {
		name    string
		b       config.Backend
		wantErr string
	}{
		{"openai", config.Backend{Name: "a", Type: config.TypeOpenAI, Key: openaiKey}, ""},
		{"openai without key", config.Backend{Name: "a", Type: config.TypeOpenAI}, "needs an api key"},
		{"compatible without key", config.Backend{Name: "a", Type: config.TypeOpenAICompatible, BaseURL: "http://localhost:11434/v1"}, ""},
		{"compatible without url", config.Backend{Name: "a", Type: config.TypeOpenAICompatible}, "needs a base_url"},
		{"azure", config.Backend{Name: "a", Type: config.TypeAzure, BaseURL: "https://r.openai.azure.com", Key: azureKey}, ""},
		{"azure without key", config.Backend{Name: "a", Type: config.TypeAzure, BaseURL: "https://r.openai.azure.com"}, "needs an api key"},
		{"azure without url", config.Backend{Name: "a", Type: config.TypeAzure, Key: azureKey}, "needs a base_url"},
		{"relative url", config.Backend{Name: "a", Type: config.TypeOpenAICompatible, BaseURL: "localhost/v1"}, "absolute"},
		{"ftp url", config.Backend{Name: "a", Type: config.TypeOpenAICompatible, BaseURL: "ftp://localhost/v1"}, "absolute"},
		{"unknown type", config.Backend{Name: "a", Type: "anthropic", Key: openaiKey}, "unknown type"},
		{"no name", config.Backend{Type: config.TypeOpenAI, Key: openaiKey}, "no name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := New(tt.b, nil)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("New: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("New error %v, want %q", err, tt.wantErr)
			}
			if tt.b.Key == "" {
				return
			}
			if err != nil && strings.Contains(err.Error(), tt.b.Key.Reveal()) {
				t.Errorf("error %v contains the key", err)
			}
			if p == nil {
				return
			}
			t.Run("printed", func(t *testing.T) {
				// KNOWN BUG, reported: Provider.backend (an unexported
				// config.Backend) holds the key as a config.Secret, and fmt
				// cannot call Secret's Format on an unexported field, so
				// %v, %+v and %#v of a Provider print the key. Delete this
				// Skip once the Provider stops keeping the key in backend.
				if s := fmt.Sprintf("%v %+v %#v", p, *p, *p); strings.Contains(s, tt.b.Key.Reveal()) {
					t.Errorf("a printed Provider shows the key: %s", s)
				}
			})
		})
	}
}

// TestNewCopiesModelMap: changing the backend's map after New does not
// change where the Provider sends.
func TestNewCopiesModelMap(t *testing.T) {
	rc, srv := recording(t, nil)
	b := azureBackend(srv.URL)
	p := newProvider(t, b)
	b.ModelMap["gpt-4o"] = "elsewhere"
	if _, err := p.Send(t.Context(), chatCall("gpt-4o")); err != nil {
		t.Fatal(err)
	}
	if got := rc.last(t).Path; got != "/openai/deployments/prod-4o/chat/completions" {
		t.Errorf("path %s", got)
	}
}
