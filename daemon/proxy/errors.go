package proxy

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"

	"github.com/lbgpt/lbgpt/balance"
	"github.com/lbgpt/lbgpt/provider"
	"github.com/lbgpt/lbgpt/rpc"
)

// ErrShuttingDown is the cause of the requests a stopping daemon cancels.
var ErrShuttingDown = errors.New("lbgptd is shutting down")

// kindCodes assigns a protocol code to every kind of failure. This and
// Error are the one place where failures become wire errors; the HTTP
// endpoint maps these codes to statuses.
var kindCodes = map[provider.Kind]int{
	provider.KindRateLimited: rpc.CodeRateLimited,
	provider.KindAuth:        rpc.CodeAuth,
	provider.KindBadRequest:  rpc.CodeBadRequest,
	provider.KindNotFound:    rpc.CodeNotFound,
	balance.KindNoBackend:    rpc.CodeNotFound,
	balance.KindTooLarge:     rpc.CodeBadRequest,
	provider.KindServer:      rpc.CodeUnavailable,
	provider.KindNetwork:     rpc.CodeUnavailable,
	provider.KindTimeout:     rpc.CodeTimeout,
	provider.KindCanceled:    rpc.CodeCanceled,
}

// Error turns a request's failure into the error its client sees, with
// received, what a broken stream had delivered, in its data. Its messages
// come from provider errors, which are already redacted. Error(nil, …) is
// nil.
func Error(err error, received json.RawMessage) *rpc.Error {
	if err == nil {
		return nil
	}
	if re, ok := errors.AsType[*rpc.Error](err); ok {
		return re
	}
	if errors.Is(err, ErrShuttingDown) {
		return &rpc.Error{Code: rpc.CodeShuttingDown, Message: ErrShuttingDown.Error() + ": the request was canceled; retry it once lbgptd is back",
			Data: &rpc.ErrorData{Kind: "shutting_down", Received: received}}
	}
	be, ok := errors.AsType[*balance.Error](err)
	if !ok {
		pe := provider.AsError(err)
		if pe.Kind == provider.KindServer { // not an upstream failure: ours
			return &rpc.Error{Code: rpc.CodeInternal, Message: err.Error()}
		}
		be = &balance.Error{Kind: pe.Kind, Message: string(pe.Kind)}
		if pe.Backend != "" {
			be.Last = pe
		}
	}
	code, ok := kindCodes[be.Kind]
	if !ok {
		code = rpc.CodeInternal
	}
	data := &rpc.ErrorData{Kind: string(be.Kind), Attempts: be.Attempts, Received: received}
	if be.Last != nil {
		data.Backend = be.Last.Backend
		data.Status = be.Last.Status
		data.RetryAfterMS = be.Last.RetryAfter.Milliseconds()
		data.Code = be.Last.Code
		data.Field = be.Last.Param
	}
	msg := err.Error()
	if msg == "" {
		msg = string(be.Kind)
	}
	return &rpc.Error{Code: code, Message: msg, Data: data}
}

// InvalidParams is the error of a request or its params that cannot be
// served as they are; field names the culprit ("" when none).
func InvalidParams(field, format string, args ...any) *rpc.Error {
	e := &rpc.Error{Code: rpc.CodeInvalidParams, Message: fmt.Sprintf(format, args...)}
	if field != "" {
		e.Data = &rpc.ErrorData{Field: field}
	}
	return e
}

// Internal is an error of lbgptd itself.
func Internal(err error) *rpc.Error {
	return &rpc.Error{Code: rpc.CodeInternal, Message: err.Error()}
}

// DecodeError is the invalid-params error of a JSON decoding error of
// what ("request", "params"), naming the field it is about.
func DecodeError(err error, what string) *rpc.Error {
	return InvalidParams(fieldOf(err), "%s: %s", what, describeJSONError(err))
}

// fieldOf names the field a decoding error is about, when it says.
func fieldOf(err error) string {
	if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
		return te.Field
	}
	if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return strings.Trim(f, `"`)
	}
	return ""
}

func describeJSONError(err error) string {
	if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
		if te.Type == reflect.TypeFor[rpc.Duration]() {
			return fmt.Sprintf("field %q: want seconds (30) or a duration string (\"30s\"), not negative, got %s", te.Field, te.Value)
		}
		if te.Field == "" {
			return fmt.Sprintf("want a JSON object, got JSON %s", te.Value)
		}
		return fmt.Sprintf("field %q: want %s, got JSON %s", te.Field, jsonKind(te.Type.Kind()), te.Value)
	}
	if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return "unknown field " + f
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

// jsonKind names a Go kind as the JSON a client should send.
func jsonKind(k reflect.Kind) string {
	switch k {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Map, reflect.Struct, reflect.Pointer, reflect.Interface:
		return "an object"
	}
	return "a number"
}
