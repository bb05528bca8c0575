package verify

import (
	"strings"
	"testing"
)

func TestSame(t *testing.T) {
	v, err := New()
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		a, b string
		same bool
		why  string // a fragment of the refusal
	}{
		{"How large is the moon?", "Can you please tell me how big the moon is?", true, ""},
		{"How many legs do spiders have?", "how many legs does a spider have", true, ""},
		{"How do I reverse a list in Python?", "What's the way to reverse a Python list?", true, ""},
		{"Summarize this in three bullet points", "Summarize this in 3 bullet points", true, ""},
		{"Where did they go?", "Where have they gone?", true, ""},
		{"How do I remove a file in Linux?", "How can I delete a file on Linux?", true, ""},
		{"pong", "pongo", true, ""},
		{"Convert 10 km to miles", "Convert 10 kilometres to miles", true, ""},
		{"ping", "ping", true, ""},
		{"hello", "hello!", true, ""},

		{"pong", "test", false, "no counterpart"},
		{"hello", "thanks", false, "no content words"},
		{"What is the capital of France?", "What is the capital of Germany?", false, `"france"`},
		{"convert 5 km to miles", "convert 5 miles to km", false, "governed"},
		{"Is gold heavier than lead?", "Is lead heavier than gold?", false, ""},
		{"Translate it from English to French", "Translate it from French to English", false, ""},
		{"Give me 3 tips", "Give me 5 tips", false, "number"},
		{"Give me one tip", "Give me two tips", false, "number"},
		{"Why is the sky blue?", "Why isn't the sky blue?", false, "negation"},
		{"Bread with yeast", "Bread without yeast", false, "negation"},
		{"Did Brutus kill Caesar?", "Did Caesar kill Brutus?", false, "swap"},
		{"Give me the data as JSON", "Give me the data as CSV", false, ""},
		{"Write it in Python", "Write it in Java", false, ""},
		{"What is the biggest planet?", "What is the big planet?", false, `"biggest"`},
		{"What is the largest planet?", "What is the smallest planet?", false, ""},
		{"How many grams in a pound?", "How many grams in an ounce?", false, ""},
		{"When was he born?", "Where was he born?", false, ""},
		{"What happened before the war?", "What happened after the war?", false, "relational"},
		{"Who is Iran's leader?", "Who is Iraq's leader?", false, ""},
		{"Install kubectl", "Install kubectx", false, ""},
		{"How do I cook rice?", "How do I cook fried rice?", false, `"fried"`},
	}
	for _, c := range cases {
		same, why := v.Same(c.a, c.b)
		if same != c.same || !strings.Contains(why, c.why) {
			t.Errorf("Same(%q, %q) = %v %q, want %v %q", c.a, c.b, same, why, c.same, c.why)
		}
		if back, _ := v.Same(c.b, c.a); back != same {
			t.Errorf("Same is not symmetric on %q, %q", c.a, c.b)
		}
	}
}

func TestOneEdit(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want bool
	}{
		{"pong", "pongo", true}, {"recieve", "receive", true}, {"form", "from", true},
		{"cat", "cart", true}, {"abc", "abc", false}, {"abcd", "abdcx", false}, {"kitten", "sitting", false},
	} {
		if got := oneEdit(c.a, c.b); got != c.want {
			t.Errorf("oneEdit(%q, %q) = %v", c.a, c.b, got)
		}
	}
}

// FuzzSame: any pair of texts is judged without panicking, the same text is
// always the same question (unless too long to compare), and the judgement
// does not depend on the order.
func FuzzSame(f *testing.F) {
	for _, s := range []string{"convert 5 km to miles", "Why isn't the sky blue?", "Did Brutus kill Caesar?", "", "it's", "'", "Ünïcödé 3.5,000 km/h", "How to"} {
		f.Add(s, "How do I reverse a list in Python?")
	}
	v, err := New()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		if same, why := v.Same(a, a); !same && why != "too long to compare" {
			t.Errorf("Same(%q, itself) = false: %s", a, why)
		}
		if ab, ba := first(v.Same(a, b)), first(v.Same(b, a)); ab != ba {
			t.Errorf("Same(%q, %q) = %v but reversed %v", a, b, ab, ba)
		}
	})
}

func first(ok bool, _ string) bool { return ok }

func TestLongTextsAreRefusedQuickly(t *testing.T) {
	v, err := New()
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("alpha beta gamma delta 12 Paris to from ", 200)
	if same, why := v.Same(long, long+" x"); same || why != "too long to compare" {
		t.Errorf("Same(long, long+x) = %v %q", same, why)
	}
}
