// Package rpc defines lbgptd's wire protocol: JSON-RPC 2.0 over a Unix
// socket, one JSON object per line.
//
// Everything here is a promise to other programs (the lbgpt client, Python
// scripts, socat users), so every value is spelled out and nothing depends on
// Go-specific encodings. The package uses only the standard library; the
// protocol is documented method by method in docs/protocol.md.
//
// OpenAI requests and responses travel as raw JSON (json.RawMessage): lbgptd
// accepts a full OpenAI chat completion request and answers with the full
// OpenAI response, so nothing in between has to know every OpenAI field.
package rpc

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Version of the protocol. It changes only when a change would break a
// client written against an earlier version.
const Version = 1

// Methods and notifications, sorted. The daemon's method table (daemon/methods.go)
// is the one place that maps them to handlers.
const (
	// MethodCancel is a notification (no id) that cancels an in-flight
	// request of the same connection: params {"id": <the request's id>}.
	MethodCancel = "cancel"
	// MethodChat answers one chat completion. Params ChatParams, result
	// ChatResult. With "stream": true in the request, every chunk is first
	// sent as a NotifyChatChunk notification.
	MethodChat = "chat"
	// MethodStatus reports the daemon and its backends. No params, result
	// StatusResult.
	MethodStatus = "status"

	// NotifyChatChunk carries one streamed chunk of a chat request:
	// params ChunkParams.
	NotifyChatChunk = "chat.chunk"
)

// ChatParams are the params of MethodChat.
type ChatParams struct {
	// Request is a full OpenAI chat completion request, exactly as it would
	// be sent to https://api.openai.com/v1/chat/completions.
	Request json.RawMessage `json:"request"`
	// Options are lbgpt's own per-request options; they never go upstream.
	Options Options `json:"options,omitzero"`
}

// Options are lbgpt's per-request options.
type Options struct {
	// Timeout bounds the whole request, retries included. Zero means the
	// daemon's request_timeout. On the wire: a number of seconds (30, 0.5)
	// or a Go duration string ("30s", "1m30s").
	Timeout Duration `json:"timeout,omitzero"`
}

// ChatResult is the result of MethodChat.
type ChatResult struct {
	// Response is the full OpenAI chat completion response. For a streamed
	// request it is assembled from the chunks.
	Response json.RawMessage `json:"response"`
	// Meta says how lbgpt answered.
	Meta Meta `json:"lbgpt"`
}

// Meta says how lbgpt answered a request.
type Meta struct {
	Backend    string `json:"backend"`     // name of the backend that answered
	Model      string `json:"model"`       // model as sent upstream (Azure: the deployment)
	Attempts   int    `json:"attempts"`    // upstream calls made, the successful one included
	Cache      string `json:"cache"`       // CacheMiss for now
	Streamed   bool   `json:"streamed"`    // the answer was streamed as notifications
	UpstreamUS int64  `json:"upstream_us"` // time spent waiting on upstream calls, microseconds
	DaemonUS   int64  `json:"daemon_us"`   // time spent in the daemon outside upstream calls
}

// Cache outcomes in Meta.Cache.
const (
	CacheMiss = "miss"
)

// ChunkParams are the params of NotifyChatChunk.
type ChunkParams struct {
	// ID is the JSON-RPC id of the request the chunk belongs to, exactly as
	// the client sent it (a number or a string).
	ID json.RawMessage `json:"id"`
	// Chunk is one OpenAI chat.completion.chunk object.
	Chunk json.RawMessage `json:"chunk"`
}

// CancelParams are the params of MethodCancel.
type CancelParams struct {
	ID json.RawMessage `json:"id"`
}

// StatusResult is the result of MethodStatus.
type StatusResult struct {
	Version   string          `json:"version"`  // lbgptd's version
	Protocol  int             `json:"protocol"` // Version
	PID       int             `json:"pid"`
	StartedAt time.Time       `json:"started_at"`
	UptimeS   float64         `json:"uptime_s"`
	Simulated bool            `json:"simulated"` // the backends are lbgpt's built-in simulator (lbgptd --demo)
	Config    string          `json:"config"`    // the config file in use, "" when built from the environment
	Backends  []BackendStatus `json:"backends"`
}

// BackendStatus is one backend in StatusResult.
type BackendStatus struct {
	Name     string   `json:"name"`
	Type     string   `json:"type"` // "openai" | "azure" | "openai-compatible"
	BaseURL  string   `json:"base_url"`
	Models   []string `json:"models"` // empty: any model
	State    string   `json:"state"`  // one of the State constants
	Requests int64    `json:"requests"`
	Errors   int64    `json:"errors"`
	InFlight int64    `json:"in_flight"`
	// CooldownUntil is set while the backend is cooling down after a 429.
	CooldownUntil time.Time `json:"cooldown_until,omitzero"`
}

// Backend states in BackendStatus.State.
const (
	StateOK      = "ok"
	StateCooling = "cooling"  // rate limited upstream, waiting for Retry-After
	StateDeadKey = "dead_key" // the upstream refused the API key (401/403)
)

// Duration is a time.Duration that reads a number of seconds or a Go
// duration string from JSON and writes a duration string.
type Duration time.Duration

// MarshalJSON writes the duration as a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON reads a number of seconds or a Go duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	s := strings.TrimSpace(string(b))
	if s == "null" {
		return nil
	}
	if strings.HasPrefix(s, `"`) {
		var str string
		if err := json.Unmarshal(b, &str); err != nil {
			return err
		}
		v, err := time.ParseDuration(str)
		if err != nil {
			return fmt.Errorf("duration %q: want seconds (30) or a duration string (\"30s\")", str)
		}
		if v < 0 {
			return fmt.Errorf("duration %q is negative", str)
		}
		*d = Duration(v)
		return nil
	}
	secs, err := strconv.ParseFloat(s, 64)
	if err != nil || secs < 0 || secs > 1e9 {
		return fmt.Errorf("duration %s: want seconds (30) or a duration string (\"30s\")", s)
	}
	*d = Duration(secs * float64(time.Second))
	return nil
}
