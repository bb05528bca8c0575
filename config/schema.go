package config

import (
	"fmt"
	"math"
	"reflect"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// The schema of lbgpt.toml, built from the toml tags of Config.

type kind int

const (
	kindTable    kind = iota + 1 // a struct: [daemon]
	kindArray                    // a slice of structs: [[backend]]
	kindMap                      // map[string]string: model_map
	kindString                   // string, Secret
	kindInt                      // int
	kindFloat                    // float64
	kindStrings                  // []string
	kindDuration                 // Duration
	kindBool                     // bool
)

// want says what a value of each kind must be, in errors.
var want = map[kind]string{
	kindTable:    "a table",
	kindArray:    "an array of tables",
	kindMap:      "a table of strings",
	kindString:   "a string",
	kindInt:      "an integer",
	kindFloat:    "a number",
	kindStrings:  "an array of strings",
	kindDuration: `a duration such as "30s" or "2m"`,
	kindBool:     "true or false",
}

type node struct {
	name   string
	path   string // of a table or array of tables, dotted from the top: budget.namespace
	kind   kind
	where  string  // how errors name a table: "in [daemon]"
	fields []*node // of a table or array of tables, in declaration order
}

func (n *node) field(name string) *node {
	for _, f := range n.fields {
		if f.name == name {
			return f
		}
	}
	return nil
}

var schema = buildSchema(reflect.TypeFor[Config](), "", "", "at the top level")

// buildSchema builds the node of the table name, whose dotted path from the
// top is path ("" at the top level).
func buildSchema(t reflect.Type, name, path, where string) *node {
	n := &node{name: name, path: path, kind: kindTable, where: where}
	for f := range t.Fields() {
		tag, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		if tag == "" || tag == "-" {
			continue
		}
		full := tag // how errors name a sub-table: [budget], [[budget.namespace]]
		if path != "" {
			full = path + "." + tag
		}
		var c *node
		switch ft := f.Type; {
		case ft == reflect.TypeFor[Duration]():
			c = &node{name: tag, kind: kindDuration}
		case ft.Kind() == reflect.String:
			c = &node{name: tag, kind: kindString}
		case ft.Kind() == reflect.Int:
			c = &node{name: tag, kind: kindInt}
		case ft.Kind() == reflect.Float64:
			c = &node{name: tag, kind: kindFloat}
		case ft.Kind() == reflect.Bool:
			c = &node{name: tag, kind: kindBool}
		case ft.Kind() == reflect.Struct:
			c = buildSchema(ft, tag, full, "in ["+full+"]")
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
			c = buildSchema(ft.Elem(), tag, full, "in [["+full+"]]")
			c.kind = kindArray
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.String:
			c = &node{name: tag, kind: kindStrings}
		case ft.Kind() == reflect.Map && ft.Key().Kind() == reflect.String && ft.Elem().Kind() == reflect.String:
			c = &node{name: tag, kind: kindMap, where: "in " + tag}
		default:
			panic(fmt.Sprintf("config: no schema for field %s of type %s", f.Name, ft))
		}
		n.fields = append(n.fields, c)
	}
	return n
}

// unknownKeys reports every key of the file that the schema does not have,
// once per table it is in.
func (ck *checker) unknownKeys() {
	seen := map[string]bool{}
	for _, o := range ck.loc.occ {
		n := schema
		for j, s := range o.path {
			if n.kind != kindTable && n.kind != kindArray {
				break // a model_map entry, or a type error checkTable reports
			}
			if f := n.field(s.name); f != nil {
				n = f
				continue
			}
			if k := canonBare(o.path[:j+1]); !seen[k] {
				seen[k] = true
				ck.errs = append(ck.errs, &Error{File: ck.file, Line: o.line, Msg: unknownMsg(o, j, n)})
			}
			break
		}
	}
}

func unknownMsg(o occurrence, j int, in *node) string {
	name := o.path[j].name
	s := suggest(name, in)
	if o.header != "" && j == 0 && len(o.path) == 1 {
		msg := fmt.Sprintf("unknown table %s", bracket(o.header, name))
		if s != nil && (s.kind == kindTable || s.kind == kindArray) {
			h := "["
			if s.kind == kindArray {
				h = "[["
			}
			msg += fmt.Sprintf(" (did you mean %s?)", bracket(h, s.name))
		}
		return msg
	}
	msg := fmt.Sprintf("unknown key %q %s", name, in.where)
	if s != nil {
		msg += fmt.Sprintf(" (did you mean %q?)", s.name)
	}
	return msg
}

func bracket(open, name string) string {
	close := strings.Repeat("]", len(open))
	return open + toml.Key{name}.String() + close
}

// aliases maps names people reach for (after normalize) to the key lbgpt
// calls that.
var aliases = map[string]string{
	"key": "api_key", "apikey": "api_key", "token": "api_key", "secret": "api_key",
	"key_env": "api_key_env", "apikey_env": "api_key_env", "api_key_var": "api_key_env", "env": "api_key_env",
	"key_file": "api_key_file", "apikey_file": "api_key_file", "api_key_path": "api_key_file",
	"url": "base_url", "endpoint": "base_url", "api_base": "base_url", "azure_endpoint": "base_url",
	"azure_api_base": "base_url", "api_url": "base_url", "base": "base_url", "host": "base_url",
	"deployments": "model_map", "deployment": "model_map", "azure_model_map": "model_map",
	"deployment_map": "model_map", "model_mapping": "model_map",
	"model":   "models",
	"version": "api_version",
	"rpm":     "limit_rpm", "requests_per_minute": "limit_rpm",
	"tpm": "limit_tpm", "tokens_per_minute": "limit_tpm",
	"concurrency": "max_concurrent", "max_concurrency": "max_concurrent",
	"max_concurrent_requests": "max_concurrent", "parallel": "max_concurrent",
	"timeout": "request_timeout",
	"retries": "max_attempts", "max_retries": "max_attempts", "attempts": "max_attempts",
	"provider": "type", "kind": "type",
	"tier":        "priority",
	"socket_path": "socket", "listen": "socket",
	"max_message_size": "max_message_bytes", "max_line_bytes": "max_message_bytes",
	"backends":  "backend",
	"redis_url": "redis", "redis_uri": "redis", "prefix": "key_prefix",
	"ca_file": "tls_ca_file", "tls_ca": "tls_ca_file", "ca_cert": "tls_ca_file", "tls_ca_cert": "tls_ca_file",
	"password_var": "password_env", "pass": "password",
	"scope": "limit_scope", "rate_limit_scope": "limit_scope", "limit_group": "limit_scope",
	"name": "model", "prices": "price", "pricing": "price", "budgets": "budget", "namespaces": "namespace",
	"prompt": "input", "input_price": "input", "completion": "output", "output_price": "output",
	"cached": "cached_input", "cache_input": "cached_input", "cached_input_price": "cached_input",
	"daily": "day", "per_day": "day", "monthly": "month", "per_month": "month",
	"warn": "warn_at", "warning": "warn_at", "warn_share": "warn_at", "alert_at": "warn_at",
}

func normalize(s string) string {
	return strings.ReplaceAll(strings.ToLower(s), "-", "_")
}

// suggest returns the key of table in that name most likely meant, or nil.
func suggest(name string, in *node) *node {
	k := normalize(name)
	if a, ok := aliases[k]; ok {
		if f := in.field(a); f != nil {
			return f
		}
	}
	var best *node
	bestD := math.MaxInt
	for _, f := range in.fields {
		if d := distance(k, f.name); d < bestD {
			best, bestD = f, d
		}
	}
	if best == nil || bestD > max(2, len(k)/3) {
		return nil
	}
	return best
}

// distance is the optimal string alignment distance between a and b: edits
// are insertions, deletions, substitutions and swaps of neighbours.
func distance(a, b string) int {
	x, y := []rune(a), []rune(b)
	d := make([][]int, len(x)+1)
	for i := range d {
		d[i] = make([]int, len(y)+1)
		d[i][0] = i
	}
	for j := range y {
		d[0][j+1] = j + 1
	}
	for i := 1; i <= len(x); i++ {
		for j := 1; j <= len(y); j++ {
			cost := 1
			if x[i-1] == y[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && x[i-1] == y[j-2] && x[i-2] == y[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(x)][len(y)]
}

// checkTable checks the types of the keys of the table n in m; unknown keys
// are left to unknownKeys.
func (ck *checker) checkTable(n *node, m map[string]any, path []seg) {
	for _, f := range n.fields {
		if v, ok := m[f.name]; ok {
			ck.checkValue(n, f, v, append(slices.Clip(path), seg{f.name, -1}))
		}
	}
}

func (ck *checker) checkValue(in, f *node, v any, path []seg) {
	w := want[f.kind]
	switch f.kind {
	case kindTable:
		w = fmt.Sprintf("%s ([%s])", w, f.path)
	case kindArray:
		w = fmt.Sprintf("%s ([[%s]])", w, f.path)
	}
	bad := func() {
		ck.errorf(path, "key %q %s must be %s, not %s", f.name, in.where, w, typeName(v))
	}
	switch f.kind {
	case kindTable:
		m, ok := v.(map[string]any)
		if !ok {
			bad()
			return
		}
		ck.checkTable(f, m, path)
	case kindArray:
		var elems []any
		switch v := v.(type) {
		case []map[string]any:
			for _, e := range v {
				elems = append(elems, e)
			}
		case []any:
			elems = v
		default:
			bad()
			return
		}
		for i, e := range elems {
			p := slices.Clone(path)
			p[len(p)-1].idx = i
			m, ok := e.(map[string]any)
			if !ok {
				ck.errorf(p, "key %q %s must be %s, not an array holding %s", f.name, in.where, w, typeName(e))
				return
			}
			ck.checkTable(f, m, p)
		}
	case kindMap:
		m, ok := v.(map[string]any)
		if !ok {
			bad()
			return
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if _, ok := m[k].(string); !ok {
				ck.errorf(append(slices.Clip(path), seg{k, -1}), "key %q %s must be a string, not %s", k, f.where, typeName(m[k]))
			}
		}
	case kindString:
		if _, ok := v.(string); !ok {
			bad()
		}
	case kindInt:
		i, ok := v.(int64)
		if !ok {
			bad()
			return
		}
		if int64(int(i)) != i {
			ck.errorf(path, "key %q %s is out of range", f.name, in.where)
		}
	case kindFloat:
		switch v.(type) {
		case int64, float64:
		default:
			bad()
		}
	case kindBool:
		if _, ok := v.(bool); !ok {
			bad()
		}
	case kindStrings:
		a, ok := v.([]any)
		if !ok {
			bad()
			return
		}
		for _, e := range a {
			if _, ok := e.(string); !ok {
				ck.errorf(path, "key %q %s must be %s, not an array holding %s", f.name, in.where, w, typeName(e))
				return
			}
		}
	case kindDuration:
		s, ok := v.(string)
		if !ok {
			bad()
			return
		}
		if _, err := time.ParseDuration(s); err != nil {
			ck.errorf(path, "key %q %s must be %s, not %q", f.name, in.where, w, s)
		}
	}
}

// typeName names the TOML type of a decoded value.
func typeName(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case bool:
		return "a boolean"
	case []map[string]any, []any:
		return "an array"
	case map[string]any:
		return "a table"
	}
	return "a date or time"
}
