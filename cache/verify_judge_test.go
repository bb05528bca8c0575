package cache

import (
	"strings"
	"testing"

	"github.com/lbgpt/lbgpt/cache/verify"
)

// The verifier's vetoes, each on a pair the model alone might accept, and
// pairs it accepts: the same question typed another way.
func TestJudge(t *testing.T) {
	v, err := NewVerifier()
	if err != nil {
		t.Fatal(err)
	}
	block := "\n\nERROR 2026-03-01 12:00:01 db pool exhausted (size=10)\nWARN  2026-03-01 12:00:02 retrying in 5s\nERROR 2026-03-01 12:00:07 request /api/orders timed out after 30s\nINFO  2026-03-01 12:00:09 pool size raised to 20\n"
	cases := []struct {
		a, b string
		same bool
		why  string // a fragment of the refusal
	}{
		{"What is the capital of France?", "what is the capital of france", true, ""},
		{"How do I reverse a list in Python?", "how do i reverse a list in python??", true, ""},
		{"What is the difference between baking soda and baking powder?", "whats the diffrence between baking soda and baking powdr", true, ""},
		{"Explain this log:" + block, "What does this log mean?" + block, true, ""},

		{"Give me 3 tips for sleeping better", "Give me 5 tips for sleeping better", false, "number"},
		{"Why is the sky blue?", "Why isn't the sky blue?", false, "negation"},
		{"Bread recipe with yeast", "Bread recipe without yeast", false, "negation"},
		{"Write a function to reverse a string in Python", "Write a function to reverse a string in Rust", false, "different proglang"},
		{"Translate 'good morning' into French", "Translate 'good morning' into German", false, "different language"},
		{"Explain the Pythagorean theorem", "Explain the Pythagorean theorem as a haiku", false, "format"},
		{"What is the largest planet?", "What is the smallest planet?", false, "degree"},
		{"How do I install Docker on Windows?", "How do I install Docker on macOS?", false, "platform"},
		{"convert 5 km to miles", "convert 5 miles to km", false, ""},
		{"Did Brutus kill Caesar?", "Did Caesar kill Brutus?", false, "trade places"},
		{"Is every square a rectangle?", "Is every rectangle a square?", false, "trade places"},
		{"Who hired Smith?", "Who did Smith hire?", false, "who did what to whom"},
		{"What is the capital of Germany?", "What is the capital of Austria?", false, "differ"},
		{"Explain this log:" + block, "Explain this log:" + strings.Replace(block, "size=10", "size=12", 1), false, "pasted text differs"},
		{"How fast is 100 km/h in m/s?", "How fast is 100 km/h in mph?", false, "unit"},

		// What only one side asks for: a clause or a word added to, or one
		// word changed in, an otherwise identical request.
		{"Write a birthday message for my coworker Priya who is turning 30", "Write a birthday message for my coworker Priya who is turning 30, make it funny", false, "only one side asks for"},
		{"Write a Python function that validates an IBAN using the mod-97 check.", "Write a Python function that validates an IBAN using the mod-97 check, plus unit tests with pytest.", false, "only one side asks for"},
		{"recipe for a vegetarian lasagna for 6 people", "recipe for a vegan lasagna for 6 people", false, "in place of"},
		{"Are lilies toxic to cats?", "are lilies toxic to dogs", false, "in place of"},
		{"Excel formula to sum column C where column A is 'North' and column B is 'Q3'", "Excel formula to sum column C where column A is 'North' or column B is 'Q3'", false, `"and" and "or"`},
		{"git: how do I delete a local branch called feature/login-v2", "git: how do I delete the remote branch feature/login-v2 on origin", false, "different direction"},
		{"Proofread this: 'Their going to send the report tomorrow, its been delayed due to the holidays.'", "Proofread this: 'There going to send the reports tomorrow, it's been delayed due to the holiday.'", false, "quoted text differs"},
		{"Do I have to send a 1099 to my contractor?", "does my contractor have to send a 1099 to me", false, "pronoun"},
		// Who did what survives the setting aside of pronouns: the same
		// content words, the parties in other roles.
		{"Someone has sent money into my account by mistake. What should I do?", "I've sent money to someone's account by mistake. What should I do?", false, "who does what"},
		{"My landlord owes me money", "I owe my landlord money", false, ""},
		{"How do I check if a key exists in a map in Go?", "how do i check whether a key exists in a Go map", true, ""},

		// How people write: text-speak, courtesy, a yes/no tail, another
		// English; and the refusals that still hold through them.
		{"How do I stop my dog pulling on the lead?", "how 2 stop dog pulling on leash?? plz help", true, ""},
		{"how many symphonies did beethoven write", "Good afternoon. Could you tell me how many symphonies Beethoven wrote? Thank you kindly, Peter", true, ""},
		{"Can I use my UK driving licence in the USA?", "can i use my uk driver's license in the usa or not?", true, ""},
		{"What is the difference between baking soda and baking powder?", "whats the difference between bicarbonate of soda and baking powder", true, ""},
		{"how to make pancakes", "how 2 make 2 pancakes", false, "number"},
		{"Is Basel II stricter than Basel III?", "is basel iii stricter than basel ii", false, "trade places"},
		{"How do I set up a shared mailbox in Microsoft 365?", "how do i remove a shared mailbox in microsoft 365", false, "different direction"},
		{"What questions should I ask the interviewer at the end of a job interview?", "What questions should I ask the candidate at the end of a job interview?", false, "different role"},
	}
	for _, c := range cases {
		got := v.Judge(c.a, c.b)
		if got.Same != c.same || !strings.Contains(got.Reason, c.why) {
			t.Errorf("Judge(%q, %q) = %v %q, want %v %q", c.a, c.b, got.Same, got.Reason, c.same, c.why)
		}
		if back := v.Judge(c.b, c.a); back.Same != got.Same {
			t.Errorf("Judge is not symmetric on %q, %q: %v, reversed %v (%s)", c.a, c.b, got.Same, back.Same, back.Reason)
		}
	}
}

// FuzzJudge: any pair is judged without panicking, a text is always the
// same as itself, and the judgement does not depend on the order.
func FuzzJudge(f *testing.F) {
	for _, s := range []string{"convert 5 km to miles", "Why isn't the sky blue?", "Did Brutus kill Caesar?", "", "it's", "'", "Ünïcödé 3.5,000 km/h", "How to", "US vs us", "type A blood"} {
		f.Add(s, "How do I reverse a list in Python?")
	}
	v, err := NewVerifier()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		if got := v.Judge(a, a); !got.Same && got.Reason != "too long to compare" && got.Reason != "nothing to compare on one side" {
			t.Errorf("Judge(%q, itself) = %s", a, got.Reason)
		}
		if ab, ba := v.Judge(a, b).Same, v.Judge(b, a).Same; ab != ba {
			t.Errorf("Judge(%q, %q) = %v but reversed %v", a, b, ab, ba)
		}
	})
}

// No word is in two closed classes: the class map is built from a map and
// would pick one at random.
func TestClosedClassesDisjoint(t *testing.T) {
	if dup := verify.ClassOverlaps(); len(dup) > 0 {
		t.Errorf("words in two closed classes: %v", dup)
	}
}

// Names of code and data match only by their own form; before and after,
// and a conversion's direction, are read wherever they sit.
func TestJudgeNamesAndDirections(t *testing.T) {
	v, err := NewVerifier()
	if err != nil {
		t.Fatal(err)
	}
	code := "\n\n```python\nTAX_RATES = {\"DE\": 0.19, \"FR\": 0.20}\n\ndef calculate_tax(amount, country):\n    return round(amount * TAX_RATES.get(country, 0), 2)\n\ndef calculate_total(items, country):\n    subtotal = sum(i[\"price\"] for i in items)\n    return subtotal + calculate_tax(subtotal, country)\n```\n"
	cases := []struct {
		a, b string
		why  string // a fragment of the refusal
	}{
		// Identifiers: snake_case, camelCase, dotted and file names,
		// words in backticks, the things of data named in a slot.
		{"Write a SQL query that counts rows in the orders table per customer_id.", "Write a SQL query that counts rows in the invoices table per account_id.", "differ"},
		{"How do I mock fetch_user in pytest when sync_accounts calls it?", "How do I mock fetch_users in pytest when sync_accounts calls it?", "name different things"},
		{"What does getUserName return when the session has expired?", "What does getUserId return when the session has expired?", "name different things"},
		{"Why does webpack ignore the settings in tsconfig.json?", "Why does webpack ignore the settings in jsconfig.json?", "name different things"},
		{"How do I protect the `main` branch from force pushes?", "How do I protect the `release` branch from force pushes?", "differ"},
		{"Excel: in the Orders sheet, look up each product_id's price from the Prices sheet (product_id in column A, price in column C).", "Excel: in the Orders sheet, look up each product_id's price from the Costs sheet (product_id in column A, price in column C).", "the sheet"},
		// An operator standing alone is a name of code.
		{"Python: what is the difference between is and ==?", "what does := do in python", "name different things"},
		// A name changed inside the request around the same pasted code.
		{"Rename calculate_total to compute_total everywhere in this code and give me the whole file back:" + code, code + "rename calculate_tax -> compute_tax throughout this, full file back pls", "name different things"},
		// Before / after, since / until, wherever they sit.
		{"git log: show the commits made after 2024-06-01", "git log: show the commits made before 2024-06-01", "opposite ways"},
		{"Which Jira tickets were closed since the 4.2 release?", "Which Jira tickets were closed until the 4.2 release?", "opposite ways"},
		// A conversion between two named formats or systems, either way.
		{"Write a Python script that reads orders.csv and writes the same data to orders.json as a list of objects.", "python script: read orders.json (list of objects) and write it out as orders.csv", "converted the other way"},
		{"Walk me through migrating our app's database from MySQL to Postgres.", "Walk me through a Postgres to MySQL migration of our app's database.", "the other way"},
		// Two lists that trade places around a frame with one word changed.
		{"pandas: reshape a dataframe with columns region, jan, feb, mar into long format with columns region, month, sales.", "pandas: reshape a dataframe with columns region, month, sales into wide format with columns region, jan, feb, mar.", "trade places"},
		// Tools are entities: another tool is another answer.
		{"How do I run a single test function with pytest?", "How do I run a single test function with unittest?", "different tool"},
	}
	for _, c := range cases {
		got := v.Judge(c.a, c.b)
		if got.Same || !strings.Contains(got.Reason, c.why) {
			t.Errorf("Judge(%q, %q) = %v %q, want a refusal %q", c.a, c.b, got.Same, got.Reason, c.why)
		}
		if back := v.Judge(c.b, c.a); back.Same {
			t.Errorf("Judge is not symmetric on %q, %q: reversed %v (%s)", c.a, c.b, back.Same, back.Reason)
		}
	}
	// A wait measured after a point is no side of it; a name typed with
	// one letter wrong is the same name.
	for _, c := range [][2]string{
		{"How long does it take to get a tax refund after e-filing?", "e-filed my return, how long till the refund shows up?"},
		{"What is a Kubernetes namespace used for?", "what is a kuberntes namespace used for"},
		{"How do I use the useEffect hook in React?", "how do i use the useEffct hook in react"},
	} {
		if got := v.Judge(c[0], c[1]); strings.Contains(got.Reason, "opposite ways") || strings.Contains(got.Reason, "the namespace") || strings.Contains(got.Reason, "name different things") {
			t.Errorf("Judge(%q, %q) refused: %s", c[0], c[1], got.Reason)
		}
	}
}
