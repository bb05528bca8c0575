package rpc

import (
	"encoding/json"
	"fmt"
)

// Error codes. The first five are JSON-RPC 2.0's own; the rest are lbgpt's,
// in the range the specification leaves to servers. Codes never change
// meaning; new ones are only added.
const (
	CodeParseError     = -32700 // the line is not JSON
	CodeInvalidRequest = -32600 // JSON, but not a JSON-RPC request
	CodeMethodNotFound = -32601
	CodeInvalidParams  = -32602
	CodeInternal       = -32603

	CodeRateLimited  = -32001 // every backend stayed rate limited until the deadline
	CodeAuth         = -32002 // every backend that could answer refused its API key
	CodeBadRequest   = -32003 // the upstream rejected the request itself (400/422); retrying will not help
	CodeNotFound     = -32004 // no backend serves the model, or it is missing upstream
	CodeUnavailable  = -32005 // upstream server or network errors until the attempts ran out
	CodeTimeout      = -32006 // the request's deadline passed
	CodeCanceled     = -32007 // the client canceled the request
	CodeTooLarge     = -32008 // the line is longer than the daemon's max_message_bytes
	CodePermission   = -32009 // the connecting user is not allowed to use this daemon
	CodeShuttingDown = -32010 // the daemon is stopping
	CodeBudget       = -32011 // the request could cost more than a [budget] limit has left
)

// Error is a JSON-RPC error object. Errors returned by the client package
// are *Error for everything the daemon answered; compare them with errors.Is
// against the sentinels below.
type Error struct {
	Code    int        `json:"code"`
	Message string     `json:"message"`
	Data    *ErrorData `json:"data,omitempty"`
}

// ErrorData is the data member of lbgpt's errors.
type ErrorData struct {
	// Kind classifies the last upstream failure: "rate_limited", "auth",
	// "bad_request", "not_found", "server", "network", "timeout",
	// "canceled"; or lbgpt's own "no_backend".
	Kind     string `json:"kind,omitempty"`
	Backend  string `json:"backend,omitempty"`  // backend of the last attempt
	Status   int    `json:"status,omitempty"`   // HTTP status of the last attempt
	Attempts int    `json:"attempts,omitempty"` // upstream calls made
	// RetryAfterMS is how long the upstream asked to wait, when it did.
	RetryAfterMS int64 `json:"retry_after_ms,omitempty"`
	// Field names a request field that caused CodeInvalidParams, or that
	// the upstream named when it refused the request.
	Field string `json:"field,omitempty"`
	// Code is the upstream's own error code, such as "model_not_found".
	Code string `json:"code,omitempty"`
	// Received holds what a stream had delivered before it failed.
	Received json.RawMessage `json:"received,omitempty"`
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s (code %d)", e.Message, e.Code)
}

// Is reports whether target is an *Error with the same code, so that
// errors.Is(err, rpc.ErrTimeout) works whatever the message.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// Sentinels for errors.Is.
var (
	ErrMethodNotFound = &Error{Code: CodeMethodNotFound, Message: "method not found"}
	ErrInvalidParams  = &Error{Code: CodeInvalidParams, Message: "invalid params"}
	ErrRateLimited    = &Error{Code: CodeRateLimited, Message: "rate limited"}
	ErrAuth           = &Error{Code: CodeAuth, Message: "upstream refused the API key"}
	ErrBadRequest     = &Error{Code: CodeBadRequest, Message: "bad request"}
	ErrNotFound       = &Error{Code: CodeNotFound, Message: "model not found"}
	ErrUnavailable    = &Error{Code: CodeUnavailable, Message: "upstream unavailable"}
	ErrTimeout        = &Error{Code: CodeTimeout, Message: "deadline exceeded"}
	ErrCanceled       = &Error{Code: CodeCanceled, Message: "canceled"}
	ErrTooLarge       = &Error{Code: CodeTooLarge, Message: "message too large"}
	ErrPermission     = &Error{Code: CodePermission, Message: "permission denied"}
	ErrShuttingDown   = &Error{Code: CodeShuttingDown, Message: "daemon shutting down"}
	ErrBudget         = &Error{Code: CodeBudget, Message: "over budget"}
)
