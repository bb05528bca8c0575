package sim

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestSchemaInstance(t *testing.T) {
	tests := []struct {
		name, schema, want string
	}{
		{"absent", ``, `{}`},
		{"not json", `{"type":`, `{}`},
		{"null", `null`, `{}`},
		{"empty schema", `{}`, `"sim"`},
		{"true schema", `true`, `"sim"`},
		{"false schema", `false`, `null`},
		{"string", `{"type":"string"}`, `"sim"`},
		{"enum", `{"type":"string","enum":["red","green"]}`, `"red"`},
		{"enum of objects", `{"enum":[{"b":1,"a":[true,null]}]}`, `{"b":1,"a":[true,null]}`},
		{"const", `{"type":"string","const":"fixed \"value\""}`, `"fixed \"value\""`},
		{"string formats", `{"type":"object","properties":{"d":{"type":"string","format":"date"},"t":{"type":"string","format":"date-time"},"e":{"type":"string","format":"email"},"u":{"type":"string","format":"uuid"}}}`,
			`{"d":"2025-01-02","t":"2025-01-02T03:04:05Z","e":"sim@example.com","u":"00000000-0000-4000-8000-000000000000"}`},
		{"string lengths", `{"type":"array","prefixItems":[{"type":"string","minLength":6},{"type":"string","maxLength":2},{"type":"string","minLength":100000}]}`,
			`["simmmm","si","sim` + strings.Repeat("m", schemaMaxString-3) + `"]`},
		{"integer", `{"type":"integer"}`, `1`},
		{"integer minimum", `{"type":"integer","minimum":2.5}`, `3`},
		{"integer exclusive minimum", `{"type":"integer","exclusiveMinimum":1}`, `2`},
		{"integer maximum", `{"type":"integer","maximum":-3}`, `-3`},
		{"integer fractional maximum", `{"type":"integer","maximum":0.5}`, `0`},
		{"number", `{"type":"number"}`, `1`},
		{"number minimum", `{"type":"number","minimum":1.5}`, `1.5`},
		{"number huge minimum", `{"type":"number","minimum":1e400}`, `1`},
		{"boolean", `{"type":"boolean"}`, `true`},
		{"null type", `{"type":"null"}`, `null`},
		{"nullable", `{"type":["null","integer"]}`, `1`},
		{"only null", `{"type":["null"]}`, `null`},
		{"array", `{"type":"array","items":{"type":"integer"}}`, `[1]`},
		{"array minItems", `{"type":"array","items":{"type":"boolean"},"minItems":3}`, `[true,true,true]`},
		{"array maxItems 0", `{"type":"array","items":{"type":"boolean"},"maxItems":0}`, `[]`},
		{"array without items", `{"type":"array"}`, `["sim"]`},
		{"draft 4 tuple", `{"type":"array","items":[{"type":"integer"},{"type":"string"}]}`, `[1,"sim"]`},
		{"object in schema order, required or not", `{"type":"object","properties":{"z":{"type":"string"},"a":{"type":"integer"},"m":{"type":"boolean"}},"required":["a"]}`,
			`{"z":"sim","a":1,"m":true}`},
		{"untyped object", `{"properties":{"x":{"type":"number"}}}`, `{"x":1}`},
		{"nested", `{"type":"object","properties":{"user":{"type":"object","properties":{"name":{"type":"string"},"tags":{"type":"array","items":{"type":"string","enum":["a","b"]}}}}}}`,
			`{"user":{"name":"sim","tags":["a"]}}`},
		{"anyOf", `{"anyOf":[{"type":"integer"},{"type":"string"}]}`, `1`},
		{"oneOf with description", `{"description":"d","oneOf":[{"type":"boolean"},{"type":"string"}]}`, `true`},
		{"allOf merged", `{"allOf":[{"type":"object","properties":{"a":{"type":"integer"}}},{"properties":{"b":{"type":"string"}}}]}`, `{"a":1,"b":"sim"}`},
		{"$defs", `{"type":"object","properties":{"p":{"$ref":"#/$defs/point"}},"$defs":{"point":{"type":"object","properties":{"x":{"type":"number"},"y":{"type":"number"}}}}}`,
			`{"p":{"x":1,"y":1}}`},
		{"definitions", `{"type":"array","items":{"$ref":"#/definitions/c"},"definitions":{"c":{"type":"string","enum":["c1"]}}}`, `["c1"]`},
		{"escaped pointer", `{"$ref":"#/$defs/a~1b~0c","$defs":{"a/b~c":{"type":"integer"}}}`, `1`},
		{"unresolvable ref", `{"$ref":"#/$defs/missing","type":"boolean"}`, `true`},
		{"remote ref", `{"$ref":"https://example.com/schema.json"}`, `"sim"`},
		{"anyOf nullable ref", `{"type":"object","properties":{"n":{"anyOf":[{"$ref":"#/$defs/n"},{"type":"null"}]}},"$defs":{"n":{"type":"integer","minimum":7}}}`, `{"n":7}`},
		{"ref cycle", `{"$ref":"#/$defs/a","$defs":{"a":{"$ref":"#/$defs/b"},"b":{"$ref":"#/$defs/a"}}}`, `"sim"`},
		{"self reference", `{"$ref":"#"}`, `"sim"`},
		{"unknown type", `{"type":"color"}`, `"sim"`},
		{"not a schema", `42`, `"sim"`},
		{"strict openai style", `{"type":"object","properties":{"steps":{"type":"array","items":{"type":"object","properties":{"explanation":{"type":"string"},"output":{"type":"string"}},"required":["explanation","output"],"additionalProperties":false}},"final_answer":{"type":"string"}},"required":["steps","final_answer"],"additionalProperties":false}`,
			`{"steps":[{"explanation":"sim","output":"sim"}],"final_answer":"sim"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(schemaInstance([]byte(tt.schema)))
			if got != tt.want {
				t.Errorf("schemaInstance(%s)\n = %s\nwant %s", tt.schema, got, tt.want)
			}
			if !json.Valid([]byte(got)) {
				t.Errorf("not JSON: %s", got)
			}
		})
	}
}

// TestSchemaInstanceRecursive: a recursive schema ends, leanly, in a
// bounded document that still has every required property.
func TestSchemaInstanceRecursive(t *testing.T) {
	tree := `{"$ref":"#/$defs/node","$defs":{"node":{"type":"object","properties":{"name":{"type":"string"},"children":{"type":"array","items":{"$ref":"#/$defs/node"}}},"required":["name"]}}}`
	got := schemaInstance([]byte(tree))
	if !json.Valid(got) || len(got) > 10000 || !strings.HasPrefix(string(got), `{"name":"sim","children":[{"name":"sim"`) {
		t.Errorf("tree: %s", got)
	}
	// Required properties that recurse forever are cut off by the depth limit.
	loop := `{"$defs":{"a":{"type":"object","properties":{"next":{"$ref":"#/$defs/a"}},"required":["next"]}},"$ref":"#/$defs/a"}`
	if got := schemaInstance([]byte(loop)); !json.Valid(got) || !strings.Contains(string(got), "null") {
		t.Errorf("loop: %s", got)
	}
	// A wide and deep schema stays bounded.
	var b strings.Builder
	b.WriteString(`{"$defs":{"w":{"type":"object","properties":{`)
	for i := range 50 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`"p` + string(rune('a'+i%26)) + string(rune('a'+i/26)) + `":{"$ref":"#/$defs/w"}`)
	}
	b.WriteString(`},"required":["pa"]}},"$ref":"#/$defs/w"}`)
	if got := schemaInstance([]byte(b.String())); !json.Valid(got) || len(got) > 1<<20 {
		t.Errorf("wide: %d bytes, valid %v", len(got), json.Valid(got))
	}
}

func FuzzSchemaInstance(f *testing.F) {
	for _, seed := range []string{
		`{"type":"object","properties":{"a":{"type":"string"},"b":{"type":["integer","null"],"minimum":3}},"required":["a"]}`,
		`{"$ref":"#/$defs/n","$defs":{"n":{"type":"array","items":{"$ref":"#/$defs/n"},"minItems":2}}}`,
		`{"anyOf":[{"enum":[1,"x",null]},{"allOf":[{"properties":{"q":{}}},true]}]}`,
		`{"type":"number","exclusiveMaximum":-1e308,"minimum":1e308}`,
		`[{"type":"string"}]`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, schema []byte) {
		got := schemaInstance(schema)
		if !json.Valid(got) {
			t.Fatalf("schemaInstance(%q) = %q, not JSON", schema, got)
		}
	})
}
