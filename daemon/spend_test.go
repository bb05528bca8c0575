package daemon

import (
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	openai "github.com/sashabaranov/go-openai"

	"github.com/lbgpt/lbgpt/internal/sim"
	"github.com/lbgpt/lbgpt/rpc"
)

// gpt-4o-mini's built-in list price, in USD per token.
const (
	miniInput  = 0.15 / 1e6
	miniOutput = 0.60 / 1e6
)

// answerUsage is the usage an answer reported.
func answerUsage(t *testing.T, res *rpc.ChatResult) (prompt, completion int) {
	t.Helper()
	var a struct {
		Usage struct {
			Prompt     int `json:"prompt_tokens"`
			Completion int `json:"completion_tokens"`
		} `json:"usage"`
	}
	if err := json.Unmarshal(res.Response, &a); err != nil || a.Usage.Prompt == 0 {
		t.Fatalf("no usage in %s", res.Response)
	}
	return a.Usage.Prompt, a.Usage.Completion
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-12 }

// An answer says what it cost, at its model's price; a hit, exact or
// semantic, what it saved: the cost of the answer it replays. Status and
// the spend report add them up.
func TestCostAndSaved(t *testing.T) {
	h := start(t, oneAccount(), anyModel+"[cache]\nsemantic = \"user_only\"\n")
	first := chat(t, h, userRequest("gpt-4o-mini", "How can I learn to play guitar?"), rpc.Options{})
	p, c := answerUsage(t, first)
	want := float64(p)*miniInput + float64(c)*miniOutput
	if first.Meta.Cost == nil || !near(*first.Meta.Cost, want) || first.Meta.Saved != nil {
		t.Fatalf("miss: cost %v saved %v, want cost %v (%d in, %d out at gpt-4o-mini's price)", first.Meta.Cost, first.Meta.Saved, want, p, c)
	}
	settle(h)
	exact := chat(t, h, userRequest("gpt-4o-mini", "How can I learn to play guitar?"), rpc.Options{})
	if exact.Meta.Cache != rpc.CacheExact || exact.Meta.Cost == nil || *exact.Meta.Cost != 0 || exact.Meta.Saved == nil || !near(*exact.Meta.Saved, want) {
		t.Errorf("exact hit: %+v, want cost 0 and saved %v", exact.Meta, want)
	}
	sem := chat(t, h, userRequest("gpt-4o-mini", "How do I learn to play the guitar?"), rpc.Options{})
	if sem.Meta.Cache != rpc.CacheSemantic || sem.Meta.Saved == nil || !near(*sem.Meta.Saved, want) {
		t.Errorf("semantic hit: %+v, want saved %v", sem.Meta, want)
	}
	st, err := h.client.Status(t.Context())
	if err != nil || st.Spend == nil {
		t.Fatalf("status: %v, %+v", err, st)
	}
	if d := st.Spend.Today; !near(d.CostUSD, want) || !near(d.SavedUSD, 2*want) || d.Requests != 1 || d.Hits != 2 || d.InputTokens != int64(p) || d.OutputTokens != int64(c) {
		t.Errorf("spend today = %+v, want %v paid once and saved twice", d, want)
	}
	rep, err := h.client.Spend(t.Context(), rpc.SpendParams{By: "model", Since: "hour"})
	if err != nil || len(rep.Rows) != 1 || rep.Rows[0].Name != "gpt-4o-mini" || !near(rep.Total.CostUSD, want) {
		t.Errorf("spend by model: %+v, %v", rep, err)
	}
	if _, err := h.client.Spend(t.Context(), rpc.SpendParams{By: "colour"}); !errors.Is(err, rpc.ErrInvalidParams) {
		t.Errorf("spend by an unknown group: %v", err)
	}
}

// The totals are kept in the state directory: a daemon started on it again
// has them, counted once.
func TestSpendSurvivesRestart(t *testing.T) {
	t.Setenv("STATE_DIRECTORY", t.TempDir())
	h := start(t, oneAccount(), anyModel)
	res := chat(t, h, userRequest("gpt-4o-mini", "remember what this cost"), rpc.Options{})
	h.stop()
	h = start(t, oneAccount(), anyModel)
	st, err := h.client.Status(t.Context())
	if err != nil || st.Spend == nil || !near(st.Spend.Today.CostUSD, *res.Meta.Cost) || st.Spend.Today.Requests != 1 {
		t.Fatalf("after a restart: %+v, %v; want %v over 1 request", st.Spend, err, *res.Meta.Cost)
	}
}

// A budget stops a batch at its limit: no request that could cross it is
// sent, every refusal names the budget, and what was spent stays within
// it.
func TestBudgetStopsBatch(t *testing.T) {
	// A request reserves its prompt's tokens plus its max_tokens at
	// gpt-4o-mini's price: about $0.000012 each. $0.0001 lets a few
	// through, not twenty.
	h := start(t, oneAccount(), anyModel+"[budget]\nday = 0.0001\n")
	var reqs []any
	for i := range 20 {
		req := userRequest("gpt-4o-mini", strings.Repeat("x", i)+" a different question each time")
		req["max_tokens"] = 16
		reqs = append(reqs, req)
	}
	var ok, refused int
	var mu sync.Mutex
	for ev, err := range h.client.Batch(t.Context(), reqs, rpc.Options{}, 4) {
		if err != nil {
			t.Fatal(err)
		}
		if ev.Item == nil {
			continue
		}
		mu.Lock()
		switch e := ev.Item.Error; {
		case e == nil:
			ok++
		case e.Code == rpc.CodeBudget && strings.Contains(e.Message, "budget overall per day"):
			refused++
		default:
			t.Errorf("item %d: %v", ev.Item.Index, e)
		}
		mu.Unlock()
	}
	if ok == 0 || refused == 0 || ok+refused != 20 {
		t.Fatalf("%d answered, %d refused of 20: want both", ok, refused)
	}
	if n := chatCalls(h); n != ok {
		t.Errorf("%d upstream calls for %d answers: a refused request went upstream", n, ok)
	}
	st, err := h.client.Status(t.Context())
	if err != nil || len(st.Spend.Budgets) != 1 {
		t.Fatalf("status: %+v, %v", st.Spend, err)
	}
	if b := st.Spend.Budgets[0]; b.SpentUSD > b.LimitUSD || b.SpentUSD == 0 || b.ReservedUSD != 0 {
		t.Errorf("budget %+v: spent past the limit, or reservations left over", b)
	}
}

// Over budget, the HTTP endpoint answers as OpenAI does for a spent quota,
// and tells SDKs not to retry.
func TestHTTPOverBudget(t *testing.T) {
	h := startHTTP(t, accounts(sim.Faults{}), httpBackends+"[budget]\nday = 0.000001\n")
	_, err := h.openai.CreateChatCompletion(t.Context(), oaiRequest("gpt-4o-mini", "too dear"))
	var apiErr *openai.APIError
	if !errors.As(err, &apiErr) || apiErr.HTTPStatusCode != 429 || apiErr.Type != "insufficient_quota" || !strings.Contains(apiErr.Message, "budget overall per day") {
		t.Fatalf("over budget: %v", err)
	}
	// A day's budget frees up at the end of the day: no Retry-After.
	req, _ := http.NewRequest("POST", h.base+"/chat/completions", strings.NewReader(`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"too dear"}]}`))
	req.Header.Set("Authorization", "Bearer "+h.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "" || resp.Header.Get("X-Should-Retry") != "false" {
		t.Errorf("over budget: %d, Retry-After %q, X-Should-Retry %q", resp.StatusCode, resp.Header.Get("Retry-After"), resp.Header.Get("X-Should-Retry"))
	}
	if n := chatCalls(h.harness); n != 0 {
		t.Errorf("%d upstream calls", n)
	}
}

// A damaged ledger is said in status; a priced request under a budget is
// refused (nobody could count the limit), an unpriced one is not.
func TestDamagedLedger(t *testing.T) {
	state := t.TempDir()
	t.Setenv("STATE_DIRECTORY", state)
	if err := os.WriteFile(filepath.Join(state, "spend.json"), []byte("{garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	opts := oneAccount()
	opts.Models = append(slices.Clone(sim.DefaultModels), "llama-free")
	h := start(t, opts, anyModel+"[budget]\nday = 5\n")
	st, err := h.client.Status(t.Context())
	if err != nil || st.Spend != nil || !strings.Contains(st.SpendError, "spend.json") {
		t.Fatalf("status: spend %+v, spend_error %q, %v", st.Spend, st.SpendError, err)
	}
	if _, err := h.client.Chat(t.Context(), userRequest("gpt-4o-mini", "priced"), rpc.Options{}); !errors.Is(err, rpc.ErrBudget) || !strings.Contains(err.Error(), "did not open") {
		t.Errorf("a priced request: %v, want -32011 saying why", err)
	}
	if _, err := h.client.Chat(t.Context(), userRequest("llama-free", "unpriced"), rpc.Options{}); err != nil {
		t.Errorf("an unpriced request: %v", err)
	}
}
