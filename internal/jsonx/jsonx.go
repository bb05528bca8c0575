// Package jsonx holds what lbgpt's hot path needs of JSON beyond
// encoding/json: a faster validity check that no input can crash.
package jsonx

import (
	"bytes"
	"encoding/json"

	"github.com/tidwall/gjson"
)

// maxDepth is encoding/json's nesting limit.
const maxDepth = 10000

// Valid reports whether b is JSON. It uses gjson's check, about three
// times faster than encoding/json's but recursive: b with more brackets
// than encoding/json's nesting limit is checked by encoding/json instead,
// so that no input exhausts the stack (gjson's check of a value 20 million
// brackets deep overflows it: a fatal error, not a panic).
func Valid(b []byte) bool {
	if bytes.Count(b, []byte{'['})+bytes.Count(b, []byte{'{'}) > maxDepth {
		return json.Valid(b)
	}
	return gjson.ValidBytes(b)
}
