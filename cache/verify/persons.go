package verify

import "fmt"

// Who does what to whom is carried by the personal pronouns and the
// possessives that stand for the parties: "Someone has sent money into my
// account" and "I've sent money to someone's account" share every content
// word, and differ only in who sent and whose account it is. Each such
// word is read as a person (the writer — "I", "we", "you" asked
// generically —, a third party, an indefinite someone) and a role (the
// doer, the one done to, the owner). Two prompts may drop a pronoun ("how
// do I reset my password" / "how to reset the password"); they may not
// give the parties other roles: one side's persons must be among the
// other's.

// person is a pronoun's person and role: "1s" the writer as the doer,
// "3o" a third party done to, "xp" someone as the owner; role "?" when
// the form does not say ("someone", "you").
type person struct{ who, role byte }

var personWords = map[string]person{
	"i": {'1', 's'}, "we": {'1', 's'},
	"me": {'1', 'o'}, "us": {'1', 'o'}, "myself": {'1', 'o'}, "ourselves": {'1', 'o'},
	"my": {'1', 'p'}, "our": {'1', 'p'}, "mine": {'1', 'p'}, "ours": {'1', 'p'},
	"you": {'1', '?'}, "yourself": {'1', 'o'}, "your": {'1', 'p'}, "yours": {'1', 'p'},
	"he": {'3', 's'}, "she": {'3', 's'}, "they": {'3', 's'},
	"him": {'3', 'o'}, "them": {'3', 'o'}, "themselves": {'3', 'o'}, "himself": {'3', 'o'}, "herself": {'3', 'o'},
	"his": {'3', 'p'}, "their": {'3', 'p'}, "theirs": {'3', 'p'}, "hers": {'3', 'p'}, "her": {'3', '?'},
	"someone": {'x', '?'}, "somebody": {'x', '?'},
}

// persons lists the parties a prompt names by pronoun. "You" asked to do
// something ("could you explain", "can you please") and "me" or "us"
// after a framing verb ("tell me", "give us") are the conversation, not
// a party.
func persons(ts []token) []person {
	var out []person
	for i, t := range ts {
		p, ok := personWords[t.raw]
		if !ok || t.norm != t.raw && t.norm != t.raw+"_" && personWords[t.norm] != p {
			continue
		}
		if t.norm == t.raw+"_" {
			continue // "US", an acronym
		}
		if t.poss {
			p.role = 'p' // "someone's account"
		}
		if t.raw == "you" && i+1 < len(ts) && (ts[i+1].class == classFiller || ts[i+1].norm == "please") {
			continue
		}
		if (t.raw == "me" || t.raw == "us") && i > 0 && ts[i-1].class == classFiller {
			continue
		}
		out = append(out, p)
	}
	return out
}

// personsDiffer reports a role that one side gives to one party and the
// other to another ("Someone has sent money into my account" / "I've sent
// money to someone's account": the owner is the writer on one side,
// someone on the other). A party named on one side only, or in a role the
// form leaves open ("someone", "you"), changes nothing.
func personsDiffer(ta, tb []token) string {
	pa, pb := persons(ta), persons(tb)
	for _, role := range []byte{'s', 'o', 'p'} {
		x, y := onlyIn(pa, pb, role), onlyIn(pb, pa, role)
		if x != 0 && y != 0 {
			return fmt.Sprintf("who does what differs: %s on one side, %s on the other", personName{x, role}, personName{y, role})
		}
	}
	return ""
}

// onlyIn returns a person xs gives the role that ys does not (0: none).
func onlyIn(xs, ys []person, role byte) byte {
	for _, x := range xs {
		if x.role != role {
			continue
		}
		found := false
		for _, y := range ys {
			if y.role == role && y.who == x.who {
				found = true
			}
		}
		if !found {
			return x.who
		}
	}
	return 0
}

type personName person

func (p personName) String() string {
	who := map[byte]string{'1': "the writer", '3': "a third party", 'x': "someone"}[p.who]
	role := map[byte]string{'s': " doing", 'o': " done to", 'p': " owning"}[p.role]
	return who + role
}
