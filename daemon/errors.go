package daemon

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"

	"github.com/creachadair/jrpc2"

	"github.com/lbgpt/lbgpt/balance"
	"github.com/lbgpt/lbgpt/provider"
	"github.com/lbgpt/lbgpt/rpc"
)

// kindCodes assigns a JSON-RPC code to every kind of failure. This and
// rpcError are the one place where internal errors become wire errors.
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

// rpcError turns a request's failure into the error the client sees. Its
// messages come from provider errors, which are already redacted.
func rpcError(err error, received json.RawMessage) error {
	var je *jrpc2.Error
	if errors.As(err, &je) {
		return je
	}
	if errors.Is(err, errShuttingDown) {
		return (&jrpc2.Error{Code: rpc.CodeShuttingDown, Message: errShuttingDown.Error() + ": the request was canceled; retry it once lbgptd is back"}).
			WithData(rpc.ErrorData{Kind: "shutting_down", Received: received})
	}
	var be *balance.Error
	if !errors.As(err, &be) {
		pe := provider.AsError(err)
		if pe.Kind == provider.KindServer { // not an upstream failure: ours
			return &jrpc2.Error{Code: rpc.CodeInternal, Message: err.Error()}
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
	data := rpc.ErrorData{Kind: string(be.Kind), Attempts: be.Attempts, Received: received}
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
	return (&jrpc2.Error{Code: jrpc2.Code(code), Message: msg}).WithData(data)
}

func invalidParams(field, format string, args ...any) error {
	return (&jrpc2.Error{Code: rpc.CodeInvalidParams, Message: fmt.Sprintf(format, args...)}).
		WithData(rpc.ErrorData{Field: field})
}

// strictUnmarshal decodes one JSON value into v, refusing unknown fields
// and trailing data. Errors are invalid-params errors naming the field.
func strictUnmarshal(b []byte, v any, what string) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return invalidParams(fieldOf(err), "%s: %s", what, describeJSONError(err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return invalidParams("", "%s: unexpected data after the JSON value", what)
	}
	return nil
}

// fieldOf names the field a decoding error is about, when it says.
func fieldOf(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return te.Field
	}
	if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return strings.Trim(f, `"`)
	}
	return ""
}

func describeJSONError(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
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
