package httpapi

import (
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/lbgpt/lbgpt/daemon/proxy"
	"github.com/lbgpt/lbgpt/rpc"
)

// openAIError is the error object of OpenAI's error responses:
// {"error": {"message", "type", "param", "code"}}.
type openAIError struct {
	Message string `json:"message"`
	Type    string `json:"type"`
	Param   any    `json:"param"` // a field name, or null
	Code    any    `json:"code"`  // a string, or null
	// Lbgpt is lbgpt's own account of the failure: kind, backend,
	// attempts, what a broken stream had sent.
	Lbgpt *rpc.ErrorData `json:"lbgpt,omitempty"`
}

// httpStatus maps each error code of the protocol to the HTTP status and
// OpenAI error type and code the endpoint answers with. This table and
// httpError are the one place where lbgpt's errors become HTTP errors.
var httpStatus = map[int]struct {
	status int
	typ    string
	code   string
}{
	rpc.CodeInvalidParams: {http.StatusBadRequest, "invalid_request_error", ""},
	rpc.CodeBadRequest:    {http.StatusBadRequest, "invalid_request_error", ""},
	rpc.CodeNotFound:      {http.StatusNotFound, "invalid_request_error", "model_not_found"},
	rpc.CodeTooLarge:      {http.StatusRequestEntityTooLarge, "invalid_request_error", "request_too_large"},
	rpc.CodeRateLimited:   {http.StatusTooManyRequests, "rate_limit_error", "rate_limit_exceeded"},
	// Every backend refused its API key: the caller's credentials were
	// fine (a 401 would tell it otherwise), lbgptd's are not.
	rpc.CodeAuth:         {http.StatusBadGateway, "server_error", "upstream_auth_failed"},
	rpc.CodeUnavailable:  {http.StatusBadGateway, "server_error", "upstream_unavailable"},
	rpc.CodeTimeout:      {http.StatusGatewayTimeout, "server_error", "timeout"},
	rpc.CodeCanceled:     {499, "invalid_request_error", "canceled"}, // nginx's "client closed request": nobody reads it
	rpc.CodeShuttingDown: {http.StatusServiceUnavailable, "server_error", "shutting_down"},
	rpc.CodePermission:   {http.StatusForbidden, "invalid_request_error", "permission_denied"},
	// OpenAI's own answer to a spent quota; x-should-retry: false keeps
	// the SDKs from retrying it.
	rpc.CodeBudget:   {http.StatusTooManyRequests, "insufficient_quota", "budget_exceeded"},
	rpc.CodeInternal: {http.StatusInternalServerError, "server_error", ""},
}

// httpError turns the error of an answer into an HTTP status and OpenAI's
// error body.
func httpError(err error) (int, map[string]openAIError) {
	je := proxy.Error(err, nil)
	m, ok := httpStatus[je.Code]
	if !ok {
		m = httpStatus[rpc.CodeInternal]
	}
	e := openAIError{Message: je.Message, Type: m.typ}
	if je.Data != nil {
		data := *je.Data
		e.Lbgpt = &data
		if data.Field != "" {
			e.Param = data.Field
		}
		// Network failures never got an answer: the upstream is
		// unreachable rather than failing.
		if je.Code == rpc.CodeUnavailable && data.Kind == "network" {
			m.status = http.StatusServiceUnavailable
		}
		// The upstream refused the request itself: its status and code
		// say more than lbgpt's class of failure (a response id it does
		// not know is a 404, not a missing model).
		if (je.Code == rpc.CodeBadRequest || je.Code == rpc.CodeNotFound) && data.Status >= 400 && data.Status < 500 {
			m.status = data.Status
			m.code = data.Code
		}
		if je.Code == rpc.CodeNotFound && data.Status == 0 && data.Code != "" {
			m.code = data.Code // lbgpt's own: response_not_found
		}
	}
	if m.code != "" {
		e.Code = m.code
	}
	return m.status, map[string]openAIError{"error": e}
}

// writeHTTPError answers with err as OpenAI would: its status, Retry-After
// on 429 and 503, and the error object.
func writeHTTPError(w http.ResponseWriter, err error) { writeHTTPErrorHint(w, err, nil) }

// writeHTTPErrorHint is writeHTTPError with a Retry-After for a 429 that
// the upstream gave none for: the pool itself was saturated until the
// deadline.
func writeHTTPErrorHint(w http.ResponseWriter, err error, hint func() time.Duration) {
	status, body := httpError(err)
	// lbgptd has already retried, within its attempt budget: an OpenAI
	// SDK that retried its answer too would multiply the upstream calls.
	// Only a daemon that is stopping is worth trying again.
	retry := "false"
	if status == http.StatusServiceUnavailable && body["error"].Code == "shutting_down" {
		retry = "true"
	}
	w.Header().Set("X-Should-Retry", retry)
	// A spent budget frees up at the end of its day or month: a
	// Retry-After would only invite a client to ask again and again.
	if (status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable) && body["error"].Code != "budget_exceeded" {
		wait := time.Duration(0)
		if d := body["error"].Lbgpt; d != nil && d.RetryAfterMS > 0 {
			wait = time.Duration(d.RetryAfterMS) * time.Millisecond
		} else if status == http.StatusTooManyRequests && hint != nil {
			wait = hint()
		}
		wait = max(wait, time.Second)
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
		w.Header().Set("Retry-After-Ms", strconv.FormatInt(wait.Milliseconds(), 10))
	}
	writeJSON(w, status, body)
}

// writeOpenAIError answers with an error of the endpoint itself.
func writeOpenAIError(w http.ResponseWriter, status int, e openAIError) {
	w.Header().Set("X-Should-Retry", "false") // nothing a retry would change
	writeJSON(w, status, map[string]openAIError{"error": e})
}
