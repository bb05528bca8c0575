package sim

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/lbgpt/lbgpt/internal/tokens"
)

// respAPI describes how to reach the Responses API on one route.
type respAPI struct {
	name  string
	wire  string
	root  string // path of POST .../responses
	query string // "" or "api-version=..."
	auth  func(h http.Header, key string)
}

var (
	respOpenAI   = respAPI{"openai", WireOpenAI, "/v1/responses", "", openaiWire.auth}
	respAzureV1  = respAPI{"azure v1", WireAzure, "/openai/v1/responses", "", azureWire.auth}
	respAzureVer = respAPI{"azure api-version", WireAzure, "/openai/responses", "api-version=2025-04-01-preview", azureWire.auth}
	respAPIs     = []respAPI{respOpenAI, respAzureV1, respAzureVer}
)

// do sends method to the route's root plus suffix ("", "/ID", "/ID/cancel"),
// with extra query parameters.
func (a respAPI) do(t testing.TB, base, method, suffix, key, body, query string) (*http.Response, string) {
	t.Helper()
	u := base + a.root + suffix
	if q := strings.Trim(a.query+"&"+query, "&"); q != "" {
		u += "?" + q
	}
	h := http.Header{}
	if key != "" {
		a.auth(h, key)
	}
	return do(t, method, u, h, body)
}

// create posts body and decodes the 200 answer.
func (a respAPI) create(t testing.TB, base, key, body string) (respObject, string) {
	t.Helper()
	resp, b := a.do(t, base, "POST", "", key, body, "")
	if resp.StatusCode != 200 {
		t.Fatalf("%s: create: status %d: %s", a.name, resp.StatusCode, b)
	}
	return decode[respObject](t, b), b
}

type respObject struct {
	ID                string `json:"id"`
	Object            string `json:"object"`
	CreatedAt         int64  `json:"created_at"`
	Status            string `json:"status"`
	Background        bool   `json:"background"`
	IncompleteDetails *struct {
		Reason string `json:"reason"`
	} `json:"incomplete_details"`
	Instructions       *string         `json:"instructions"`
	MaxOutputTokens    *int            `json:"max_output_tokens"`
	Model              string          `json:"model"`
	Output             []respItem      `json:"output"`
	ParallelToolCalls  bool            `json:"parallel_tool_calls"`
	PreviousResponseID *string         `json:"previous_response_id"`
	Store              bool            `json:"store"`
	Temperature        float64         `json:"temperature"`
	Text               json.RawMessage `json:"text"`
	ToolChoice         json.RawMessage `json:"tool_choice"`
	Tools              json.RawMessage `json:"tools"`
	TopP               float64         `json:"top_p"`
	Truncation         string          `json:"truncation"`
	Usage              *struct {
		InputTokens        int `json:"input_tokens"`
		InputTokensDetails struct {
			CachedTokens *int `json:"cached_tokens"`
		} `json:"input_tokens_details"`
		OutputTokens        int `json:"output_tokens"`
		OutputTokensDetails struct {
			ReasoningTokens *int `json:"reasoning_tokens"`
		} `json:"output_tokens_details"`
		TotalTokens int `json:"total_tokens"`
	} `json:"usage"`
	User     *string         `json:"user"`
	Metadata json.RawMessage `json:"metadata"`
}

type respItem struct {
	Type    string `json:"type"`
	ID      string `json:"id"`
	Status  string `json:"status"`
	Role    string `json:"role"`
	Content []struct {
		Type        string `json:"type"`
		Text        string `json:"text"`
		Annotations []any  `json:"annotations"`
		Logprobs    []any  `json:"logprobs"`
	} `json:"content"`
	CallID    string `json:"call_id"`
	Name      string `json:"name"`
	Arguments string `json:"arguments"`
}

// text returns the output text, as the SDKs' output_text computes it.
func (r respObject) text() string {
	var b strings.Builder
	for _, it := range r.Output {
		for _, c := range it.Content {
			if c.Type == "output_text" {
				b.WriteString(c.Text)
			}
		}
	}
	return b.String()
}

// respWireFields are the fields of OpenAI's response object.
var respWireFields = strings.Fields(`id object created_at status background error incomplete_details instructions
	max_output_tokens model output parallel_tool_calls previous_response_id store temperature text tool_choice
	tools top_p truncation usage user metadata`)

func TestResponsesWires(t *testing.T) {
	clk := newClock()
	s, ts := start(t, Options{Accounts: []Account{{Name: "a", Key: "k"}}, Now: clk.Now})
	const body = `{"model":"gpt-4o-mini","input":"Hello there, how are you today?","instructions":"Be brief.","metadata":{"k":"v"},"temperature":0.5,"user":"u1"}`
	msgs := []tokens.Message{{Role: "developer", Content: "Be brief."}, {Role: "user", Content: "Hello there, how are you today?"}}
	var texts []string
	for i, api := range respAPIs {
		t.Run(api.name, func(t *testing.T) {
			resp, b := api.do(t, ts.URL, "POST", "", "k", body, "")
			if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" || resp.Header.Get("openai-processing-ms") == "" {
				t.Fatalf("status %d %v: %s", resp.StatusCode, resp.Header, b)
			}
			var raw map[string]json.RawMessage
			if err := json.Unmarshal([]byte(b), &raw); err != nil {
				t.Fatal(err)
			}
			for _, f := range respWireFields {
				if _, ok := raw[f]; !ok {
					t.Errorf("no %q field", f)
				}
			}
			if _, ok := raw["output_text"]; ok || len(raw) != len(respWireFields) {
				t.Errorf("fields beyond OpenAI's: %s", b)
			}
			for f, want := range map[string]string{"error": "null", "incomplete_details": "null", "previous_response_id": "null", "max_output_tokens": "null",
				"metadata": `{"k":"v"}`, "text": `{"format":{"type":"text"}}`, "tool_choice": `"auto"`, "tools": `[]`, "instructions": `"Be brief."`} {
				if string(raw[f]) != want {
					t.Errorf("%s: %s, want %s", f, raw[f], want)
				}
			}
			r := decode[respObject](t, b)
			if !strings.HasPrefix(r.ID, "resp_") || len(r.ID) != len("resp_")+48 || r.Object != "response" || r.Status != "completed" ||
				r.CreatedAt != clk.Now().Unix() || r.Model != "gpt-4o-mini" || !r.Store || r.Background || r.Temperature != 0.5 ||
				r.TopP != 1 || r.Truncation != "disabled" || !r.ParallelToolCalls || r.User == nil || *r.User != "u1" {
				t.Errorf("response %s", b)
			}
			if len(r.Output) != 1 {
				t.Fatalf("output %s", b)
			}
			it := r.Output[0]
			if it.Type != "message" || !strings.HasPrefix(it.ID, "msg_") || it.Status != "completed" || it.Role != "assistant" ||
				len(it.Content) != 1 || it.Content[0].Type != "output_text" || it.Content[0].Annotations == nil || it.Content[0].Logprobs == nil {
				t.Errorf("output item %s", b)
			}
			text := r.text()
			if !strings.HasPrefix(text, `Simulated answer to "Hello there, how are you today?".`) {
				t.Errorf("text %q", text)
			}
			u := r.Usage
			if want := tokens.CountMessages("gpt-4o-mini", msgs); u == nil || u.InputTokens != want || u.OutputTokens != tokens.Count("gpt-4o-mini", text) ||
				u.TotalTokens != u.InputTokens+u.OutputTokens || u.InputTokensDetails.CachedTokens == nil || u.OutputTokensDetails.ReasoningTokens == nil {
				t.Errorf("usage %+v, want %d input tokens", u, want)
			}
			texts = append(texts, text)

			// Stored: the same object comes back.
			resp, got := api.do(t, ts.URL, "GET", "/"+r.ID, "k", "", "")
			if resp.StatusCode != 200 || got != b {
				t.Errorf("GET: %d %s\nwant %s", resp.StatusCode, got, b)
			}
			rec := s.Log()[2*i]
			if rec.Wire != api.wire || rec.Path != api.root || rec.Query != api.query || rec.Model != "gpt-4o-mini" || rec.Status != 200 ||
				rec.PromptTokens != u.InputTokens || rec.CompletionTokens != u.OutputTokens || rec.Charged != u.TotalTokens {
				t.Errorf("record %+v", rec)
			}
		})
	}
	if len(texts) == 3 && (texts[0] != texts[1] || texts[1] != texts[2]) {
		t.Errorf("the routes answer the same input differently: %q", texts)
	}
}

func TestResponsesAzureDeployments(t *testing.T) {
	_, ts := start(t, Options{Accounts: []Account{{Key: "k"}}, Deployments: map[string]string{"prod": "gpt-4o"}})
	for _, api := range []respAPI{respAzureV1, respAzureVer} {
		r, _ := api.create(t, ts.URL, "k", `{"model":"prod","input":"hi"}`)
		if r.Model != "gpt-4o" {
			t.Errorf("%s: model %q, want the deployment's", api.name, r.Model)
		}
		resp, b := api.do(t, ts.URL, "POST", "", "k", `{"model":"gpt-4o","input":"hi"}`, "")
		if resp.StatusCode != 404 || !strings.Contains(b, `"code":"DeploymentNotFound"`) {
			t.Errorf("%s: a model name is not a deployment: %d %s", api.name, resp.StatusCode, b)
		}
	}
	// The OpenAI wire names models.
	if r, _ := respOpenAI.create(t, ts.URL, "k", `{"model":"gpt-4o","input":"hi"}`); r.Model != "gpt-4o" {
		t.Errorf("openai: model %q", r.Model)
	}
}

func TestResponsesErrors(t *testing.T) {
	_, ts := start(t, Options{Accounts: []Account{{Name: "a", Key: "k"}}, Deployments: map[string]string{"prod": "gpt-4o-mini"}})
	h := http.Header{}
	h.Set("Authorization", "Bearer k")
	tests := []struct {
		name       string
		api        respAPI
		method     string
		suffix     string
		body       string
		wantStatus int
		wantBody   string // substring
	}{
		{"max_output_tokens below 16", respOpenAI, "POST", "", `{"model":"gpt-4o-mini","input":"x","max_output_tokens":15}`, 400,
			`{"error":{"message":"Invalid 'max_output_tokens': integer below minimum value. Expected a value >= 16, but got 15 instead.","type":"invalid_request_error","param":"max_output_tokens","code":"integer_below_min_value"}}`},
		{"unknown previous response", respOpenAI, "POST", "", `{"model":"gpt-4o-mini","input":"x","previous_response_id":"resp_nope"}`, 400,
			`{"error":{"message":"Previous response with id 'resp_nope' not found.","type":"invalid_request_error","param":"previous_response_id","code":"previous_response_not_found"}}`},
		{"unknown response", respOpenAI, "GET", "/resp_nope", "", 404,
			`{"error":{"message":"Response with id 'resp_nope' not found.","type":"invalid_request_error","param":null,"code":null}}`},
		{"unknown response to delete", respAzureV1, "DELETE", "/resp_nope", "", 404, `Response with id 'resp_nope' not found.`},
		{"unknown response to cancel", respAzureVer, "POST", "/resp_nope/cancel", "", 404, `Response with id 'resp_nope' not found.`},
		{"unknown response items", respOpenAI, "GET", "/resp_nope/input_items", "", 404, `Response with id 'resp_nope' not found.`},
		{"bad json", respOpenAI, "POST", "", `{"model":`, 400, `"type":"invalid_request_error"`},
		{"missing model", respOpenAI, "POST", "", `{"input":"x"}`, 400, `model parameter`},
		{"unknown model", respOpenAI, "POST", "", `{"model":"gpt-9","input":"x"}`, 404, `"code":"model_not_found"`},
		{"embeddings model", respOpenAI, "POST", "", `{"model":"text-embedding-3-small","input":"x"}`, 404, `not a chat model`},
		{"missing input", respOpenAI, "POST", "", `{"model":"gpt-4o-mini"}`, 400, `"param":"input","code":"missing_required_parameter"`},
		{"empty input array", respOpenAI, "POST", "", `{"model":"gpt-4o-mini","input":[]}`, 400, `"param":"input","code":"missing_required_parameter"`},
		{"input a number", respOpenAI, "POST", "", `{"model":"gpt-4o-mini","input":42}`, 400, `"param":"input","code":"invalid_type"`},
		{"input item a string", respOpenAI, "POST", "", `{"model":"gpt-4o-mini","input":["x"]}`, 400, `"param":"input[0]"`},
		{"input item without type", respOpenAI, "POST", "", `{"model":"gpt-4o-mini","input":[{"content":"x"}]}`, 400, `"param":"input[0].type"`},
		{"bad role", respOpenAI, "POST", "", `{"model":"gpt-4o-mini","input":[{"role":"user","content":"x"},{"role":"robot","content":"x"}]}`, 400, `"param":"input[1].role"`},
		{"bad content", respOpenAI, "POST", "", `{"model":"gpt-4o-mini","input":[{"role":"user","content":7}]}`, 400, `"param":"input[0].content"`},
		{"bad text format", respOpenAI, "POST", "", `{"model":"gpt-4o-mini","input":"x","text":{"format":{"type":"yaml"}}}`, 400, `"param":"text.format.type"`},
		{"tool_choice names a missing function", respOpenAI, "POST", "", `{"model":"gpt-4o-mini","input":"x","tools":[{"type":"function","name":"f"}],"tool_choice":{"type":"function","name":"g"}}`, 400, `"param":"tool_choice"`},
		{"bad tools", respOpenAI, "POST", "", `{"model":"gpt-4o-mini","input":"x","tools":{"type":"function"}}`, 400, `"param":"tools"`},
		{"wrong method", respOpenAI, "GET", "", "", 405, `Invalid method`},
		{"post to a response", respOpenAI, "POST", "/resp_x", "{}", 405, `Invalid method`},
		{"empty id", respOpenAI, "GET", "/", "", 404, `Invalid URL`},
		{"unknown operation", respOpenAI, "GET", "/resp_x/frobnicate", "", 404, `Invalid URL`},
		{"azure missing api-version", respAPI{"", WireAzure, "/openai/responses", "", azureWire.auth}, "POST", "", `{"model":"prod","input":"x"}`, 400, `"code":"MissingApiVersionParameter"`},
		{"azure missing api-version on a stored response", respAPI{"", WireAzure, "/openai/responses", "", azureWire.auth}, "GET", "/resp_x", "", 400, `"code":"MissingApiVersionParameter"`},
		{"azure unknown deployment", respAzureVer, "POST", "", `{"model":"staging","input":"x"}`, 404, `"code":"DeploymentNotFound"`},
		{"azure without model", respAzureV1, "POST", "", `{"input":"x"}`, 400, `model parameter`},
		{"azure v1 without api-version", respAzureV1, "POST", "", `{"model":"prod","input":"x"}`, 200, `"object":"response"`},
		{"unknown fields are ignored", respOpenAI, "POST", "", `{"model":"gpt-4o-mini","input":"x","reasoning":{"effort":"low"},"frobnicate":[1],"include":["message.output_text.logprobs"],"prompt_cache_key":"p","service_tier":"auto"}`, 200, `"status":"completed"`},
		{"unknown item types are kept", respOpenAI, "POST", "", `{"model":"gpt-4o-mini","input":[{"type":"reasoning","id":"rs_1","summary":[]},{"role":"user","content":"x"}]}`, 200, `"status":"completed"`},
		{"background", respOpenAI, "POST", "", `{"model":"gpt-4o-mini","input":"x","background":true}`, 200, `"background":true`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, b := tt.api.do(t, ts.URL, tt.method, tt.suffix, "k", tt.body, "")
			if resp.StatusCode != tt.wantStatus || !strings.Contains(b, tt.wantBody) {
				t.Errorf("got %d %s\nwant %d containing %s", resp.StatusCode, b, tt.wantStatus, tt.wantBody)
			}
			if !json.Valid([]byte(b)) {
				t.Errorf("not JSON: %s", b)
			}
		})
	}
	// The key comes first.
	if resp, _ := respOpenAI.do(t, ts.URL, "GET", "/resp_nope", "wrong", "", ""); resp.StatusCode != 401 {
		t.Errorf("wrong key: status %d", resp.StatusCode)
	}
}

func TestResponsesInputForms(t *testing.T) {
	_, ts := start(t, Options{Accounts: []Account{{Key: "k"}}})
	bodies := []string{
		`{"model":"gpt-4o-mini","input":"Describe this picture"}`,
		`{"model":"gpt-4o-mini","input":[{"role":"user","content":"Describe this picture"}]}`,
		`{"model":"gpt-4o-mini","input":[{"type":"message","role":"user","content":[{"type":"input_text","text":"Describe this picture"},{"type":"input_image","image_url":"data:image/png;base64,AAAA","detail":"low"},{"type":"input_file","file_id":"file-1"}]}]}`,
	}
	var first respObject
	for i, body := range bodies {
		r, _ := respOpenAI.create(t, ts.URL, "k", body)
		if i == 0 {
			first = r
			continue
		}
		if r.text() != first.text() || r.Usage.InputTokens != first.Usage.InputTokens {
			t.Errorf("%s: text %q (%d input tokens), want %q (%d)", body, r.text(), r.Usage.InputTokens, first.text(), first.Usage.InputTokens)
		}
	}
}

// listItems gets a response's input items.
func listItems(t *testing.T, api respAPI, base, id, query string) (ids, types []string, raw string) {
	t.Helper()
	resp, b := api.do(t, base, "GET", "/"+id+"/input_items", "k", "", query)
	if resp.StatusCode != 200 {
		t.Fatalf("input_items: %d %s", resp.StatusCode, b)
	}
	var list struct {
		Object  string `json:"object"`
		Data    []map[string]any
		FirstID *string `json:"first_id"`
		LastID  *string `json:"last_id"`
		HasMore *bool   `json:"has_more"`
	}
	if err := json.Unmarshal([]byte(b), &list); err != nil {
		t.Fatal(err)
	}
	for _, it := range list.Data {
		id, _ := it["id"].(string)
		typ, _ := it["type"].(string)
		ids, types = append(ids, id), append(types, typ)
	}
	if list.Object != "list" || list.HasMore == nil || *list.HasMore || list.FirstID == nil || *list.FirstID != ids[0] || *list.LastID != ids[len(ids)-1] {
		t.Errorf("input_items %s", b)
	}
	return ids, types, b
}

func TestResponsesStored(t *testing.T) {
	s, ts := start(t, Options{Accounts: []Account{{Name: "a", Key: "k"}, {Name: "b", Key: "kb"}}})
	const input = `[{"role":"system","content":"Be terse."},{"role":"user","content":"What is 6×7?"},
		{"type":"function_call","id":"fc_given","call_id":"call_1","name":"calc","arguments":"{\"x\":\"6*7\"}"},
		{"type":"function_call_output","call_id":"call_1","output":"42"}]`
	for _, api := range respAPIs {
		t.Run(api.name, func(t *testing.T) {
			bg, bgBody := api.create(t, ts.URL, "k", `{"model":"gpt-4o-mini","background":true,"input":`+input+`}`)
			fg, _ := api.create(t, ts.URL, "k", `{"model":"gpt-4o-mini","input":"plain"}`)
			if !bg.Background || bg.Status != "completed" || fg.Background {
				t.Errorf("background %v/%v, status %q", bg.Background, fg.Background, bg.Status)
			}

			ids, types, raw := listItems(t, api, ts.URL, bg.ID, "")
			if want := []string{"function_call_output", "function_call", "message", "message"}; !cmp.Equal(types, want) {
				t.Errorf("input items (newest first) %v, want %v", types, want)
			}
			if ids[1] != "fc_given" || !strings.HasPrefix(ids[0], "fco_") || !strings.HasPrefix(ids[2], "msg_") || !strings.HasPrefix(ids[3], "msg_") {
				t.Errorf("ids %v", ids)
			}
			if !strings.Contains(raw, `{"id":"`+ids[3]+`","type":"message","role":"system","content":[{"type":"input_text","text":"Be terse."}]}`) {
				t.Errorf("message item not normalised: %s", raw)
			}
			ascIDs, _, _ := listItems(t, api, ts.URL, bg.ID, "order=asc")
			if want := []string{ids[3], ids[2], ids[1], ids[0]}; !cmp.Equal(ascIDs, want) {
				t.Errorf("order=asc: %v, want %v", ascIDs, want)
			}
			if resp, b := api.do(t, ts.URL, "GET", "/"+bg.ID+"/input_items", "k", "", "order=sideways"); resp.StatusCode != 400 || !strings.Contains(b, `"param":"order"`) {
				t.Errorf("order=sideways: %d %s", resp.StatusCode, b)
			}
			if fgIDs, _, _ := listItems(t, api, ts.URL, fg.ID, ""); len(fgIDs) != 1 {
				t.Errorf("string input: items %v", fgIDs)
			}

			// Cancel: only background responses, which are already complete.
			resp, b := api.do(t, ts.URL, "POST", "/"+fg.ID+"/cancel", "k", "", "")
			if want := `{"error":{"message":"Only responses created with background=true can be cancelled.","type":"invalid_request_error","param":null,"code":null}}` + "\n"; resp.StatusCode != 400 || b != want {
				t.Errorf("cancel foreground: %d %s", resp.StatusCode, b)
			}
			if resp, b := api.do(t, ts.URL, "POST", "/"+bg.ID+"/cancel", "k", "", ""); resp.StatusCode != 200 || b != bgBody {
				t.Errorf("cancel background: %d %s", resp.StatusCode, b)
			}

			// Another account sees none of it.
			for _, path := range []string{"/" + bg.ID, "/" + bg.ID + "/input_items"} {
				if resp, _ := api.do(t, ts.URL, "GET", path, "kb", "", ""); resp.StatusCode != 404 {
					t.Errorf("other account GET %s: %d", path, resp.StatusCode)
				}
			}
			if resp, _ := api.do(t, ts.URL, "DELETE", "/"+bg.ID, "kb", "", ""); resp.StatusCode != 404 {
				t.Errorf("other account DELETE: %d", resp.StatusCode)
			}
			if resp, b := api.do(t, ts.URL, "POST", "", "kb", `{"model":"gpt-4o-mini","input":"x","previous_response_id":"`+bg.ID+`"}`, ""); resp.StatusCode != 400 || !strings.Contains(b, "previous_response_not_found") {
				t.Errorf("other account chaining: %d %s", resp.StatusCode, b)
			}

			// Delete forgets.
			resp, b = api.do(t, ts.URL, "DELETE", "/"+fg.ID, "k", "", "")
			if want := `{"id":"` + fg.ID + `","object":"response.deleted","deleted":true}` + "\n"; resp.StatusCode != 200 || b != want {
				t.Errorf("delete: %d %s", resp.StatusCode, b)
			}
			for _, m := range []string{"GET", "DELETE"} {
				if resp, b := api.do(t, ts.URL, m, "/"+fg.ID, "k", "", ""); resp.StatusCode != 404 || !strings.Contains(b, "Response with id '"+fg.ID+"' not found.") {
					t.Errorf("%s after delete: %d %s", m, resp.StatusCode, b)
				}
			}
			if resp, b := api.do(t, ts.URL, "GET", "/"+bg.ID, "k", "", ""); resp.StatusCode != 200 || b != bgBody {
				t.Errorf("GET the other: %d", resp.StatusCode)
			}
		})
	}
	// Stored-response endpoints cost nothing and record the response's model.
	for _, r := range s.Log() {
		if r.Path != "/v1/responses" && r.Path != "/openai/v1/responses" && r.Path != "/openai/responses" && r.Charged != 0 {
			t.Errorf("record %+v charged", r)
		}
		if r.Status == 200 && r.Model != "gpt-4o-mini" {
			t.Errorf("record %+v: model", r)
		}
	}
}

func TestResponsesStoreFalse(t *testing.T) {
	_, ts := start(t, Options{Accounts: []Account{{Key: "k"}}})
	r, _ := respOpenAI.create(t, ts.URL, "k", `{"model":"gpt-4o-mini","input":"x","store":false}`)
	if r.Store {
		t.Error("store: true in the object")
	}
	if resp, _ := respOpenAI.do(t, ts.URL, "GET", "/"+r.ID, "k", "", ""); resp.StatusCode != 404 {
		t.Errorf("GET an unstored response: %d", resp.StatusCode)
	}
	if resp, _ := respOpenAI.do(t, ts.URL, "POST", "", "k", `{"model":"gpt-4o-mini","input":"y","previous_response_id":"`+r.ID+`"}`, ""); resp.StatusCode != 400 {
		t.Errorf("chain to an unstored response: %d", resp.StatusCode)
	}
}

func TestResponsesChain(t *testing.T) {
	conversation := func(t *testing.T) []respObject {
		_, ts := start(t, Options{Accounts: []Account{{Key: "k"}}})
		r1, _ := respOpenAI.create(t, ts.URL, "k", `{"model":"gpt-4o-mini","input":"My name is Ada."}`)
		r2, _ := respOpenAI.create(t, ts.URL, "k", `{"model":"gpt-4o-mini","input":"What is my name?","previous_response_id":"`+r1.ID+`"}`)
		r3, _ := respOpenAI.create(t, ts.URL, "k", `{"model":"gpt-4o-mini","input":"What is my name?","previous_response_id":"`+r2.ID+`"}`)
		fresh, _ := respOpenAI.create(t, ts.URL, "k", `{"model":"gpt-4o-mini","input":"What is my name?"}`)
		instructed, _ := respOpenAI.create(t, ts.URL, "k", `{"model":"gpt-4o-mini","input":"What is my name?","instructions":"Answer in French.","previous_response_id":"`+r1.ID+`"}`)
		// Deleting a response ends chaining to it, not to those after it.
		if resp, _ := respOpenAI.do(t, ts.URL, "DELETE", "/"+r1.ID, "k", "", ""); resp.StatusCode != 200 {
			t.Fatalf("delete: %d", resp.StatusCode)
		}
		if resp, _ := respOpenAI.do(t, ts.URL, "POST", "", "k", `{"model":"gpt-4o-mini","input":"again","previous_response_id":"`+r1.ID+`"}`, ""); resp.StatusCode != 400 {
			t.Errorf("chain to a deleted response: %d", resp.StatusCode)
		}
		r4, _ := respOpenAI.create(t, ts.URL, "k", `{"model":"gpt-4o-mini","input":"What is my name?","previous_response_id":"`+r2.ID+`"}`)
		return []respObject{r1, r2, r3, fresh, instructed, r4}
	}
	rs := conversation(t)
	r1, r2, r3, fresh, instructed, r4 := rs[0], rs[1], rs[2], rs[3], rs[4], rs[5]
	if r2.PreviousResponseID == nil || *r2.PreviousResponseID != r1.ID || r1.PreviousResponseID != nil {
		t.Errorf("previous_response_id %v", r2.PreviousResponseID)
	}
	for _, r := range []respObject{r2, r3, fresh, instructed} {
		if !strings.HasPrefix(r.text(), `Simulated answer to "What is my name?".`) {
			t.Errorf("text %q", r.text())
		}
	}
	texts := map[string]string{"r2": r2.text(), "r3": r3.text(), "fresh": fresh.text(), "instructed": instructed.text()}
	seen := map[string]string{}
	for name, text := range texts {
		if other, dup := seen[text]; dup {
			t.Errorf("%s and %s answer alike: %q", name, other, text)
		}
		seen[text] = name
	}
	if r4.text() != r3.text() {
		t.Errorf("the chain through a deleted response changed: %q, was %q", r4.text(), r3.text())
	}
	chain := []tokens.Message{{Role: "user", Content: "My name is Ada."}, {Role: "assistant", Content: r1.text()}, {Role: "user", Content: "What is my name?"}}
	if want := tokens.CountMessages("gpt-4o-mini", chain); r2.Usage.InputTokens != want {
		t.Errorf("chained input tokens %d, want %d (the whole chain)", r2.Usage.InputTokens, want)
	}
	// The same conversation on another server says the same things.
	again := conversation(t)
	for i := range rs {
		if again[i].text() != rs[i].text() {
			t.Errorf("response %d: %q on one server, %q on another", i, rs[i].text(), again[i].text())
		}
	}
}

const weatherRespTools = `"tools":[{"type":"web_search_preview"},{"type":"function","name":"get_weather","description":"Weather","parameters":{"type":"object","properties":{"city":{"type":"string"},"unit":{"type":["string","null"],"enum":["c","f"]}},"required":["city","unit"],"additionalProperties":false},"strict":true}]`

func TestResponsesFunctionCalls(t *testing.T) {
	_, ts := start(t, Options{Accounts: []Account{{Key: "k"}}})
	for _, choice := range []string{`"required"`, `{"type":"function","name":"get_weather"}`} {
		r, b := respOpenAI.create(t, ts.URL, "k", `{"model":"gpt-4o-mini","input":"Weather in Paris?",`+weatherRespTools+`,"tool_choice":`+choice+`}`)
		if len(r.Output) != 1 {
			t.Fatalf("output %s", b)
		}
		fc := r.Output[0]
		if fc.Type != "function_call" || !strings.HasPrefix(fc.ID, "fc_") || !strings.HasPrefix(fc.CallID, "call_") || fc.Name != "get_weather" ||
			fc.Arguments != `{"city":"sim","unit":"c"}` || fc.Status != "completed" || r.Status != "completed" {
			t.Errorf("tool_choice %s: %s", choice, b)
		}
		if !strings.Contains(b, `"tool_choice":`+choice) {
			t.Errorf("tool_choice not echoed: %s", b)
		}
		if n := tokens.Count("gpt-4o-mini", fc.Name) + tokens.Count("gpt-4o-mini", fc.Arguments); r.Usage.OutputTokens != n {
			t.Errorf("output tokens %d, want %d", r.Usage.OutputTokens, n)
		}
		// The tool's answer gets text, even though tool_choice still asks for a call.
		r2, b2 := respOpenAI.create(t, ts.URL, "k", `{"model":"gpt-4o-mini","previous_response_id":"`+r.ID+`",`+weatherRespTools+`,"tool_choice":`+choice+`,
			"input":[{"type":"function_call_output","call_id":"`+fc.CallID+`","output":"{\"temp\":21}"}]}`)
		if len(r2.Output) != 1 || r2.Output[0].Type != "message" || !strings.HasPrefix(r2.text(), `Simulated answer to "Weather in Paris?".`) {
			t.Errorf("after the tool output: %s", b2)
		}
	}
	r, b := respOpenAI.create(t, ts.URL, "k", `{"model":"gpt-4o-mini","input":"Weather in Paris?",`+weatherRespTools+`}`)
	if r.Output[0].Type != "message" {
		t.Errorf("tool_choice auto: %s", b)
	}
}

func TestResponsesStructuredOutput(t *testing.T) {
	_, ts := start(t, Options{Accounts: []Account{{Key: "k"}}})
	r, b := respOpenAI.create(t, ts.URL, "k", `{"model":"gpt-4o-mini","input":"List two colours",
		"text":{"format":{"type":"json_schema","name":"colours","strict":true,"schema":{"type":"object","properties":{"colours":{"type":"array","items":{"type":"string"}},"count":{"type":"integer"}},"required":["colours","count"],"additionalProperties":false}}}}`)
	if r.text() != `{"colours":["sim"],"count":1}` || !strings.Contains(b, `"text":{"format":{"type":"json_schema","name":"colours"`) {
		t.Errorf("json_schema: %s", b)
	}
	r, b = respOpenAI.create(t, ts.URL, "k", `{"model":"gpt-4o-mini","input":"List two colours","text":{"format":{"type":"json_object"}}}`)
	var v map[string]string
	if err := json.Unmarshal([]byte(r.text()), &v); err != nil || !strings.HasPrefix(v["answer"], `Simulated answer to "List two colours".`) {
		t.Errorf("json_object: %s", b)
	}
}

func TestResponsesMaxOutputTokens(t *testing.T) {
	s, ts := start(t, Options{Accounts: []Account{{Key: "k", TPM: 1000}}})
	r, b := respOpenAI.create(t, ts.URL, "k", `{"model":"gpt-4o-mini","input":"Tell me a long story","max_output_tokens":16}`)
	if r.Status != "incomplete" || r.IncompleteDetails == nil || r.IncompleteDetails.Reason != "max_output_tokens" || r.Usage.OutputTokens != 16 ||
		r.Output[0].Status != "incomplete" || tokens.Count("gpt-4o-mini", r.text()) != 16 || r.MaxOutputTokens == nil || *r.MaxOutputTokens != 16 {
		t.Errorf("capped: %s", b)
	}
	r, b = respOpenAI.create(t, ts.URL, "k", `{"model":"gpt-4o-mini","input":"Tell me a long story","max_output_tokens":500}`)
	if r.Status != "completed" || r.IncompleteDetails != nil || !strings.Contains(b, `"incomplete_details":null`) {
		t.Errorf("not capped: %s", b)
	}
	log := s.Log()
	if log[1].Charged != r.Usage.InputTokens+500 {
		t.Errorf("charged %d, want input tokens + max_output_tokens = %d", log[1].Charged, r.Usage.InputTokens+500)
	}
	resp, b := respOpenAI.do(t, ts.URL, "POST", "", "k", `{"model":"gpt-4o-mini","input":"x","max_output_tokens":2000}`, "")
	if resp.StatusCode != 429 || !strings.Contains(b, "Request too large") {
		t.Errorf("too large: %d %s", resp.StatusCode, b)
	}
}

// respEvent is one event of a Responses API stream.
type respEvent struct {
	Type           string          `json:"type"`
	SequenceNumber int             `json:"sequence_number"`
	Response       *respObject     `json:"response"`
	RawResponse    json.RawMessage `json:"-"`
	OutputIndex    *int            `json:"output_index"`
	ContentIndex   *int            `json:"content_index"`
	ItemID         string          `json:"item_id"`
	Item           *respItem       `json:"item"`
	Delta          *string         `json:"delta"`
	Text           *string         `json:"text"`
	Arguments      *string         `json:"arguments"`
	Logprobs       []any           `json:"logprobs"`
	Part           *struct {
		Type string `json:"type"`
		Text string `json:"text"`
	} `json:"part"`
}

// respEvents parses a Responses API stream, checking its framing: every
// event is exactly "event: TYPE\ndata: JSON\n\n", the data's type is TYPE,
// and sequence numbers count from 0.
func respEvents(t *testing.T, body string) []respEvent {
	t.Helper()
	if !strings.HasSuffix(body, "\n\n") || strings.Contains(body, "[DONE]") {
		t.Fatalf("stream ends badly: %q", body[max(0, len(body)-60):])
	}
	var out []respEvent
	for i, ev := range strings.Split(strings.TrimSuffix(body, "\n\n"), "\n\n") {
		name, data, ok := strings.Cut(ev, "\n")
		typ, ok1 := strings.CutPrefix(name, "event: ")
		data, ok2 := strings.CutPrefix(data, "data: ")
		if !ok || !ok1 || !ok2 || strings.Contains(data, "\n") {
			t.Fatalf("bad event framing: %q", ev)
		}
		e := decode[respEvent](t, data)
		if e.Type != typ || e.SequenceNumber != i {
			t.Fatalf("event %d: type %q sequence %d in %q", i, e.Type, e.SequenceNumber, ev)
		}
		var raw struct {
			Response json.RawMessage `json:"response"`
		}
		_ = json.Unmarshal([]byte(data), &raw)
		e.RawResponse = raw.Response
		out = append(out, e)
	}
	return out
}

func eventTypes(evs []respEvent) []string {
	var out []string
	for i, e := range evs {
		if i > 0 && e.Type == evs[i-1].Type && strings.HasSuffix(e.Type, ".delta") {
			continue // one entry per run of deltas
		}
		out = append(out, e.Type)
	}
	return out
}

func TestResponsesStream(t *testing.T) {
	_, ts := start(t, Options{Accounts: []Account{{Key: "k"}}})
	for _, api := range respAPIs {
		t.Run(api.name, func(t *testing.T) {
			plain, _ := api.create(t, ts.URL, "k", `{"model":"gpt-4o-mini","input":"Stream me a short answer please"}`)
			resp, b := api.do(t, ts.URL, "POST", "", "k", `{"model":"gpt-4o-mini","stream":true,"input":"Stream me a short answer please"}`, "")
			if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
				t.Fatalf("status %d, Content-Type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
			}
			evs := respEvents(t, b)
			want := []string{"response.created", "response.in_progress", "response.output_item.added", "response.content_part.added",
				"response.output_text.delta", "response.output_text.done", "response.content_part.done", "response.output_item.done", "response.completed"}
			if diff := cmp.Diff(want, eventTypes(evs)); diff != "" {
				t.Fatalf("event types (-want +got):\n%s", diff)
			}
			created, done := evs[0].Response, evs[len(evs)-1].Response
			if created.Status != "in_progress" || len(created.Output) != 0 || created.Usage != nil || !strings.Contains(string(evs[0].RawResponse), `"output":[],`) || created.ID != done.ID {
				t.Errorf("created %s", evs[0].RawResponse)
			}
			added := evs[2].Item
			if added.Type != "message" || added.Status != "in_progress" || len(added.Content) != 0 || *evs[2].OutputIndex != 0 {
				t.Errorf("output_item.added %+v", added)
			}
			if p := evs[3].Part; p == nil || p.Type != "output_text" || p.Text != "" || evs[3].ItemID != added.ID {
				t.Errorf("content_part.added %+v", evs[3])
			}
			var text strings.Builder
			n := 0
			for _, e := range evs {
				if e.Type != "response.output_text.delta" {
					continue
				}
				if e.ItemID != added.ID || *e.OutputIndex != 0 || *e.ContentIndex != 0 || e.Logprobs == nil || e.Delta == nil {
					t.Errorf("delta %+v", e)
				}
				text.WriteString(*e.Delta)
				n++
			}
			if n < 5 || text.String() != plain.text() || done.text() != plain.text() || *evs[len(evs)-4].Text != plain.text() || evs[len(evs)-3].Part.Text != plain.text() {
				t.Errorf("streamed text %q in %d deltas, want %q", text.String(), n, plain.text())
			}
			if done.Status != "completed" || done.Usage == nil || done.Usage.OutputTokens != plain.Usage.OutputTokens || done.Usage.InputTokens != plain.Usage.InputTokens {
				t.Errorf("completed %s", evs[len(evs)-1].RawResponse)
			}
			// The stored object is the completed one.
			_, stored := api.do(t, ts.URL, "GET", "/"+done.ID, "k", "", "")
			if stored != string(evs[len(evs)-1].RawResponse)+"\n" {
				t.Errorf("stored %s\nstreamed %s", stored, evs[len(evs)-1].RawResponse)
			}
		})
	}
	t.Run("incomplete", func(t *testing.T) {
		_, b := respOpenAI.do(t, ts.URL, "POST", "", "k", `{"model":"gpt-4o-mini","stream":true,"max_output_tokens":16,"input":"Tell me a long story"}`, "")
		evs := respEvents(t, b)
		last := evs[len(evs)-1]
		if last.Type != "response.incomplete" || last.Response.Status != "incomplete" || last.Response.IncompleteDetails.Reason != "max_output_tokens" || evs[len(evs)-2].Item.Status != "incomplete" {
			t.Errorf("last events %+v %+v", evs[len(evs)-2], last)
		}
	})
	t.Run("function call", func(t *testing.T) {
		_, b := respOpenAI.do(t, ts.URL, "POST", "", "k", `{"model":"gpt-4o-mini","stream":true,"input":"Weather?",`+weatherRespTools+`,"tool_choice":"required"}`, "")
		evs := respEvents(t, b)
		want := []string{"response.created", "response.in_progress", "response.output_item.added", "response.function_call_arguments.delta",
			"response.function_call_arguments.done", "response.output_item.done", "response.completed"}
		if diff := cmp.Diff(want, eventTypes(evs)); diff != "" {
			t.Fatalf("event types (-want +got):\n%s", diff)
		}
		added, done := evs[2].Item, evs[len(evs)-2].Item
		if added.Type != "function_call" || added.Arguments != "" || added.Status != "in_progress" || added.Name != "get_weather" || added.CallID != done.CallID || added.ID != done.ID {
			t.Errorf("added %+v", added)
		}
		var args strings.Builder
		for _, e := range evs {
			if e.Type == "response.function_call_arguments.delta" {
				if e.ItemID != added.ID {
					t.Errorf("delta %+v", e)
				}
				args.WriteString(*e.Delta)
			}
		}
		if args.String() != `{"city":"sim","unit":"c"}` || *evs[len(evs)-3].Arguments != args.String() || done.Arguments != args.String() || done.Status != "completed" {
			t.Errorf("arguments %q, done %+v", args.String(), done)
		}
	})
}

func TestResponsesFaults(t *testing.T) {
	t.Run("500", func(t *testing.T) {
		s, ts := start(t, Options{Accounts: []Account{{Name: "a", Key: "k", Faults: Faults{Error500: 1}}}})
		for _, path := range []string{"", "/resp_x"} {
			method := map[string]string{"": "POST", "/resp_x": "GET"}[path]
			resp, _ := respOpenAI.do(t, ts.URL, method, path, "k", `{"model":"gpt-4o-mini","input":"x"}`, "")
			want := 500
			if path != "" {
				want = 404 // the lookup comes before the fault
			}
			if resp.StatusCode != want {
				t.Errorf("%s %s: status %d, want %d", method, path, resp.StatusCode, want)
			}
		}
		if s.Log()[0].Fault != Fault500 {
			t.Errorf("log %+v", s.Log())
		}
	})
	t.Run("malformed", func(t *testing.T) {
		s, ts := start(t, Options{Accounts: []Account{{Name: "a", Key: "k", Faults: Faults{Malformed: 1}}}})
		resp, b := respOpenAI.do(t, ts.URL, "POST", "", "k", `{"model":"gpt-4o-mini","input":"x"}`, "")
		if resp.StatusCode != 200 || json.Valid([]byte(b)) {
			t.Errorf("plain: %d %q", resp.StatusCode, b)
		}
		resp, b = respOpenAI.do(t, ts.URL, "POST", "", "k", `{"model":"gpt-4o-mini","input":"x","stream":true}`, "")
		ev, _, _ := strings.Cut(b, "\n\n")
		_, data, _ := strings.Cut(ev, "\ndata: ")
		if resp.StatusCode != 200 || !strings.HasPrefix(ev, "event: response.created\n") || json.Valid([]byte(data)) || strings.Count(b, "event:") != 1 {
			t.Errorf("stream: %d %q", resp.StatusCode, b)
		}
		for _, r := range s.Log() {
			if r.Fault != FaultMalformed || r.Status != 200 {
				t.Errorf("record %+v", r)
			}
		}
	})
	t.Run("stream break", func(t *testing.T) {
		s, ts := start(t, Options{Accounts: []Account{{Name: "a", Key: "k", Faults: Faults{StreamBreak: 1}}}})
		if r, _ := respOpenAI.create(t, ts.URL, "k", `{"model":"gpt-4o-mini","input":"not a stream"}`); r.Status != "completed" {
			t.Errorf("non-stream affected: %+v", r)
		}
		req, _ := http.NewRequest("POST", ts.URL+"/v1/responses", strings.NewReader(`{"model":"gpt-4o-mini","input":"Stream me a short answer please","stream":true}`))
		req.Header.Set("Authorization", "Bearer k")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err == nil {
			t.Errorf("stream read to the end without error: %q", b)
		}
		if n := strings.Count(string(b), "response.output_text.delta"); n < 2 || strings.Contains(string(b), "response.completed") {
			t.Errorf("%d deltas: %q", n, b)
		}
		if log := s.Log(); log[1].Fault != FaultStreamBreak || log[1].Status != 200 || !log[1].Stream {
			t.Errorf("log %+v", log)
		}
	})
}

func TestResponseStoreBound(t *testing.T) {
	s := New(Options{Accounts: []Account{{Key: "k"}}})
	s.store.limit = 3
	ts := serve(t, s)
	var ids []string
	for i := range 5 {
		r, _ := respOpenAI.create(t, ts.URL, "k", fmt.Sprintf(`{"model":"gpt-4o-mini","input":"question %d"}`, i))
		ids = append(ids, r.ID)
	}
	for i, id := range ids {
		resp, _ := respOpenAI.do(t, ts.URL, "GET", "/"+id, "k", "", "")
		if want := map[bool]int{true: 404, false: 200}[i < 2]; resp.StatusCode != want {
			t.Errorf("response %d: status %d, want %d", i, resp.StatusCode, want)
		}
	}

	// Deleted ids do not pile up in the eviction queue.
	var st responseStore
	st.limit = 10
	for i := range 20000 {
		id := fmt.Sprint(i)
		st.put(&storedResponse{id: id, account: "a"})
		if i%2 == 0 {
			st.remove(id)
		}
	}
	if len(st.m) != 10 || len(st.order)-st.head > 2*10+1024+1 || cap(st.order) > 8192 {
		t.Errorf("%d stored, queue of %d (head %d, cap %d)", len(st.m), len(st.order)-st.head, st.head, cap(st.order))
	}
	if st.get("a", "19999") == nil || st.get("b", "19999") != nil || st.get("a", "19998") != nil {
		t.Error("get")
	}
}
