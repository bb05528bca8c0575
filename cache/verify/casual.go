package verify

import (
	"cmp"
	"regexp"
	"slices"
	"strings"
	"unicode"
)

// How people write beyond the words of a request: a greeting and a
// thank-you around it, a yes/no question ending in "or not?", text-speak
// ("how 2 make", "4 me", "wat", "shud"), slang fillers ("tbh", "fr", "no
// cap"), and the vocabulary of another English ("flat" / "apartment",
// "postcode" / "zip code", "revert" / "reply"). None of it changes what
// is asked. The lists are written from general knowledge of these
// registers, not from the labelled sets.

// courtesy matches a sentence that is only a greeting, a thank-you, a
// sign-off (with the writer's name) or a plea for help.
var courtesy = regexp.MustCompile(`(?i)^(?:` +
	`(?:hi|hello|hey|hiya|greetings|dear \w+|good (?:morning|afternoon|evening|day))(?: there| all| everyone| folks| team| sir| madam)?` +
	`|(?:(?:many |a million )?thanks|thank you|thx|ty)(?: (?:so|very) much| kindly| a lot| a million| in advance| for (?:your|any) help| for reading)*` +
	`|(?:kind|best|warm) (?:regards|wishes)|regards|best|cheers|yours (?:sincerely|faithfully|truly)|sincerely|with (?:many |grateful )?thanks` +
	`|(?:i )?(?:hope|wonder if|was wondering if) (?:you (?:can|could|might) help|you(?:'re| are) (?:well|doing well|having a good \w+))(?: me)?(?: with (?:this|something))?` +
	`|(?:i would|i'd) (?:be (?:very |most |really )?grateful|appreciate) (?:for )?(?:your|any) (?:help|advice|thoughts|guidance)` +
	`|any (?:help|advice) (?:would be|is) (?:much |greatly |really )?appreciated` +
	`|quick (?:one|question)` +
	`|please do the needful` +
	`)(?:,? [A-Z][a-z]+(?: [A-Z][a-z]+)?)?[\s,.!:;]*$`)

// sentenceRE splits text into sentences, each with its end.
var sentenceRE = regexp.MustCompile(`[^.!?\n]+[.!?\n]*|[.!?\n]+`)

// dropCourtesy removes the sentences that are only courtesy ("Good
// afternoon.", "Thank you so much.", "Kind regards, Peter").
func dropCourtesy(text string) string {
	var b strings.Builder
	for _, s := range sentenceRE.FindAllString(text, -1) {
		t := strings.TrimSpace(s)
		if t == "" || !courtesyStart[firstWord(t)] {
			b.WriteString(s)
			continue
		}
		if len(t) <= 90 && courtesy.MatchString(t) {
			b.WriteString(" ")
			continue
		}
		// A greeting before the request ("Hello, can you…", "hey so…").
		b.WriteString(leadIn.ReplaceAllString(s, ""))
	}
	return b.String()
}

func firstWord(s string) string {
	i := strings.IndexFunc(s, func(r rune) bool { return !unicode.IsLetter(r) })
	if i < 0 {
		i = len(s)
	}
	return strings.ToLower(s[:i])
}

// courtesyStart are the first words of courtesy and of lead-ins.
var courtesyStart = set(`hi hello hey hiya greetings dear good many a thanks thank thx ty kind best warm regards
	cheers yours sincerely i hope wonder was would any quick please yo ok okay so um uh bro dude guys`)

// leadIn is a greeting or chatter opening a sentence.
var leadIn = regexp.MustCompile(`(?i)^\s*(?:(?:hi|hello|hey|hiya|yo|ok|okay|so|um|uh|bro|dude|guys|dear (?:sir or madam|sir|madam|assistant|all)|good (?:morning|afternoon|evening))(?: there| all| guys| everyone)?[,!]?\s+)+`)

// yesNo is the tail of a yes/no question that spells out its other answer
// ("good idea or no?", "legal or not?", "worth it or nah").
// A sentence-final particle of Singapore and Malaysian English may close
// it ("can or not ah?", "got holiday or not lah?").
var yesNo = regexp.MustCompile(`(?i)[,\s]+(?:yes |yay )?or (?:no|not|nah|nope|nay)(?:[ ,]+(?:ah|lah|leh|lor|meh|hor))?\b\s*(?:\?+|$|[.!])`)

// phrasesByStart lists the phrases of phraseTable by their first two
// bytes, the longest first.
var phrasesByStart = func() map[string][]string {
	m := map[string][]string{}
	for from := range phraseTable {
		m[from[:2]] = append(m[from[:2]], from)
	}
	for _, ps := range m {
		slices.SortFunc(ps, func(a, b string) int { return cmp.Or(cmp.Compare(len(b), len(a)), cmp.Compare(a, b)) })
	}
	return m
}()

// casualText resolves what is written around and between the words:
// courtesy, a yes/no tail, phrases of slang or another English.
func casualText(text string) string {
	text = dropCourtesy(text)
	if strings.Contains(text, " or ") {
		text = yesNo.ReplaceAllString(text, "?")
	}
	return replacePhrases(text)
}

// replacePhrases writes each phrase of phraseTable, whole words in any
// case, as its replacement.
func replacePhrases(text string) string {
	low := []byte(text)
	for i, c := range low {
		if 'A' <= c && c <= 'Z' {
			low[i] = c + 'a' - 'A'
		}
	}
	var b strings.Builder
	last := 0
	for i := 0; i+1 < len(low); i++ {
		if i > 0 && wordByte(low[i-1]) {
			continue
		}
		for _, p := range phrasesByStart[string(low[i:i+2])] {
			end := i + len(p)
			if end <= len(low) && string(low[i:end]) == p && (end == len(low) || !wordByte(low[end]) || !wordByte(low[end-1])) {
				b.WriteString(text[last:i])
				b.WriteString(" " + phraseTable[p] + " ")
				last, i = end, end-1
				break
			}
		}
	}
	if last == 0 {
		return text
	}
	b.WriteString(text[last:])
	return b.String()
}

func wordByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c >= 0x80
}

// phraseTable: phrases of slang or another English, as the word prompts
// usually use ("" for a filler); multi-word ones become one word.
var phraseTable = map[string]string{
	// Regional vocabulary: one form for the UK, US and other Englishes.
	"cell phone": "mobile", "cellphone": "mobile", "cell phones": "mobiles", "mobile phone": "mobile",
	"zip code": "postcode", "zipcode": "postcode", "post code": "postcode", "postal code": "postcode",
	"parking lot": "carpark", "car park": "carpark", "gas station": "petrolstation", "petrol station": "petrolstation",
	"baking soda": "bicarbonate", "bicarbonate of soda": "bicarbonate", "bicarb soda": "bicarbonate", "bicarb": "bicarbonate",
	"cotton bud": "qtip", "cotton buds": "qtips", "q tip": "qtip", "q tips": "qtips", "q-tip": "qtip", "q-tips": "qtips", "cotton swab": "qtip", "cotton swabs": "qtips",
	"scotch tape": "sellotape", "sticky tape": "sellotape",
	"plastic wrap": "clingfilm", "cling film": "clingfilm", "saran wrap": "clingfilm", "cling wrap": "clingfilm",
	"paper towel": "kitchenroll", "paper towels": "kitchenroll", "kitchen roll": "kitchenroll",
	"band aid": "plaster", "band-aid": "plaster", "bandaid": "plaster",
	"driving licence": "drivinglicense", "driving license": "drivinglicense", "driver's license": "drivinglicense",
	"drivers license": "drivinglicense", "driver license": "drivinglicense", "driver's licence": "drivinglicense",
	"emergency room": "ae", "a&e": "ae", "a & e": "ae", "a and e": "ae",
	"hand brake": "handbrake", "parking brake": "handbrake", "emergency brake": "handbrake",
	"checking account": "currentaccount", "current account": "currentaccount",
	"estate agent": "realtor", "real estate agent": "realtor", "estate agents": "realtors",
	"french fries": "chips", "potato chips": "crisps",
	"ground beef": "mince", "minced beef": "mince",
	"garbage can": "bin", "trash can": "bin", "rubbish bin": "bin", "dustbin": "bin", "wastebasket": "bin",
	"take away": "takeaway", "takeout": "takeaway",
	"do the needful": "do", "revert back": "reply",
	"no cap": "", "for real": "", "low key": "", "high key": "", "not gonna lie": "", "to be honest": "",
	"i do not know": "", "i dont know": "", "have no idea": "", "no idea": "",
	"flash drive": "flashdrive", "usb stick": "flashdrive", "thumb drive": "flashdrive", "memory stick": "flashdrive", "pen drive": "flashdrive",
	"petroleum jelly": "petroleumjelly", "tin foil": "aluminum foil", "kitchen foil": "aluminum foil",
	"say sorry": "apologize", "deal with": "handle", "find out": "find", "figure out": "determine",
	"set up": "setup", "set-up": "setup",
	"command line": "cli", "command-line": "cli", "command prompt": "cli",
	"regular expression": "regex", "regular expressions": "regexes", "reg ex": "regex",
	"node.js": "nodejs", "vue.js": "vue", "react.js": "react", "next.js": "nextjs",
	"i do not get why": "why", "i dont get why": "why", "i do not understand why": "why", "i dont understand why": "why",
	"i do not get it": "", "i dont get it": "", "i do not understand": "", "i dont understand": "",
	"wear n tear": "wear and tear", "rock n roll": "rock and roll",
	// Indian and other Englishes of the office, and the formal letter's
	// wrappers around a request.
	"please do the needful": "", "kindly do the needful": "", "kindly advise": "", "please advise": "",
	"kindly guide": "", "please guide": "", "kindly let me know": "", "please let me know": "",
	"kindly share": "tell", "please tell the steps": "", "revert back with": "tell", "revert with": "tell",
	"what is the procedure for": "how to", "what is the procedure to": "how to", "what is the process for": "how to",
	"what is the process to": "how to", "what's the procedure for": "how to", "what's the procedure to": "how to",
	"what's the process for": "how to", "what's the process to": "how to",
	"the procedure for": "how to", "the procedure to": "how to",
	"i would be grateful if you could": "", "i should be grateful if you could": "", "i would appreciate it if you could": "",
	"i would be grateful for guidance on": "", "i should be grateful for guidance on": "",
	"would be grateful for guidance on": "", "could you kindly outline": "", "could you please advise": "",
	"could you please set out": "",
	"in order to":              "to", "get in touch with": "contact", "reach out to": "contact",
	"single sign-on": "sso", "single sign on": "sso", "single signon": "sso",
}

// particles are words of politeness other languages lend English,
// recognised only as typed in lower case.
// Sentence-final particles of Singapore and Malaysian English ("lah",
// "leh", "lor", "meh", "hor") are among them.
var particles = set(`po naman lah leh lor meh hor`)

// textSpeak are words of text-speak and slang, and common misspellings,
// by what they stand for ("" for a filler).
var textSpeak = map[string]string{
	"wat": "what", "wut": "what", "wht": "what", "wats": "what", "wen": "when", "wer": "where",
	"shud": "should", "shld": "should", "shuld": "should", "cud": "could", "cld": "could", "wud": "would", "wld": "would",
	"gud": "good", "gr8": "great", "l8r": "later", "gimme": "give", "lemme": "let", "wanna": "want", "hv": "have",
	"ya": "you", "yu": "you", "tmrw": "tomorrow", "tmr": "tomorrow", "tmrrw": "tomorrow", "2moro": "tomorrow", "2morrow": "tomorrow",
	"2day": "today", "2nite": "tonight", "tonite": "tonight", "bcuz": "because", "bcoz": "because",
	"becuz": "because", "becuase": "because", "nd": "and", "sum1": "someone", "any1": "anyone", "some1": "someone",
	"evry": "every", "bout": "about", "prolly": "probably", "rly": "really", "srsly": "seriously", "txt": "text",
	"msging": "messaging", "pic": "picture", "luv": "love", "thnx": "", "thanx": "", "tysm": "", "ty": "",
	"idk": "", "dunno": "", "tbh": "", "ngl": "", "fr": "", "frfr": "", "lowkey": "", "highkey": "", "bruh": "", "bro": "",
	"dude": "", "smh": "", "omg": "", "lmao": "", "lmfao": "", "rofl": "", "haha": "", "hahaha": "", "nah": "", "pls": "",
	"plz": "", "plss": "", "plzz": "", "pleeease": "", "yo": "", "ok": "", "imo": "", "imho": "", "fyi": "",
	"tf": "", "af": "", "kno": "know", "knw": "know", "tryna": "trying", "recs": "recommendations", "rec": "recommendation",
	"insta": "instagram", "ig": "instagram", "fb": "facebook", "yt": "youtube", "apt": "apartment", "appt": "appointment",
	"pics": "pictures", "vid": "video", "vids": "videos",
	"tho": "", "ya'll": "", "yall": "", "fam": "", "istg": "", "ikr": "", "tl;dr": "", "tldr": "",
	"recieve": "receive", "recieved": "received", "reciept": "receipt", "reciepts": "receipts", "definately": "definitely",
	"seperate": "separate", "begginer": "beginner", "begginers": "beginners", "wich": "which", "alot": "lot",
	"untill": "until", "occured": "occurred", "accomodation": "accommodation", "tommorow": "tomorrow", "tomorow": "tomorrow",
	"wierd": "weird", "beleive": "believe", "freind": "friend", "freinds": "friends", "thier": "their",
	// Other Englishes.
	"aluminium": "aluminum", "mould": "mold", "mouldy": "moldy", "plough": "plow", "pyjamas": "pajamas", "sulphur": "sulfur",
	"cosy": "cozy", "ageing": "aging", "judgement": "judgment", "enquiry": "inquiry", "enquire": "inquire", "kerb": "curb",
	"aeroplane": "airplane", "storey": "story", "moustache": "mustache", "whilst": "while", "amongst": "among", "learnt": "learned",
	"spelt": "spelled", "draught": "draft", "jewellery": "jewelry", "manoeuvre": "maneuver", "programme": "program",
	"enrol": "enroll", "enrolment": "enrollment", "pero": "but",
	"mum": "mother", "mums": "mothers", "mummy": "mother", "mommy": "mother", "maths": "math",
}

// regionalGroups are words the Englishes use for one thing.
var regionalGroups = [][]string{
	{"flat", "apartment"}, {"flats", "apartments"}, {"holiday", "vacation"}, {"holidays", "vacations"},
	{"mobile", "phone", "smartphone"}, {"mobiles", "phones", "smartphones"}, {"petrol", "gas", "gasoline", "fuel"},
	{"lorry", "truck"}, {"nappy", "diaper"}, {"nappies", "diapers"}, {"pram", "stroller", "buggy", "pushchair"},
	{"lift", "elevator"}, {"queue", "line"}, {"biscuit", "cookie"}, {"biscuits", "cookies"},
	{"crisps", "chips"}, {"chips", "fries"}, {"trainers", "sneakers"}, {"jumper", "sweater"},
	{"trousers", "pants"}, {"rubbish", "trash", "garbage", "waste"}, {"bin", "trashcan"}, {"torch", "flashlight"},
	{"motorway", "highway", "freeway"}, {"carpark", "parkinglot"}, {"pavement", "sidewalk"}, {"tap", "faucet"},
	{"cooker", "stove"}, {"hob", "stovetop", "cooktop"}, {"aubergine", "eggplant"}, {"courgette", "zucchini"},
	{"coriander", "cilantro"}, {"rocket", "arugula"}, {"mince", "hamburger"}, {"nursery", "daycare", "preschool", "kindergarten"},
	{"ae", "er"}, {"chemist", "pharmacy", "drugstore"}, {"cv", "resume"},
	{"garden", "yard", "backyard"}, {"windscreen", "windshield"}, {"boot", "trunk"}, {"bonnet", "hood"},
	{"hoover", "vacuum"}, {"plaster", "bandage"}, {"tin", "can"}, {"sweets", "candy"}, {"lolly", "popsicle"},
	{"dummy", "pacifier"}, {"cot", "crib"}, {"flannel", "washcloth"}, {"post", "mail"}, {"postman", "mailman"},
	{"lead", "leash"}, {"saloon", "sedan"}, {"jab", "shot", "vaccine", "vaccination"}, {"solicitor", "lawyer", "attorney"},
	{"fortnightly", "biweekly"}, {"timetable", "schedule"}, {"term", "semester"},
	{"mom", "mother"}, {"dad", "father"}, {"kids", "children"},
	{"grandkids", "grandchildren"}, {"tv", "telly", "television"}, {"film", "movie"}, {"films", "movies"},
	{"ill", "sick"}, {"dustman", "garbageman"}, {"council", "city"},
	{"advance", "prepone"}, {"reply", "respond", "revert"}, {"colleague", "coworker"},
	{"pushups", "pressups"}, {"sellotape", "tape"}, {"qtip", "swab"},
}

// speakDigit reads "2" and "4" as "to" and "for" where a number cannot
// stand: after a word and before a pronoun, an article or a verb in its
// base form ("how 2 make", "lying 2 me", "4 a beginner").
func (v *Verifier) speakDigit(chunk, prev, next string) (string, bool) {
	word := map[string]string{"2": "to", "4": "for"}[chunk]
	if word == "" || prev == "" || next == "" || isNumber(prev) || isNumber(next) || strings.ToLower(next) != next {
		return "", false
	}
	switch prev {
	case "the", "a", "an", "my", "your", "ur", "of", "top", "first", "last", "only", "these", "those", "about", "around", "under", "over", "than", "and", "or", "to", "every", "per":
		return "", false
	}
	if textSpeakObject[next] {
		return word, true
	}
	e := v.lex[next]
	if c := categories[next]; c == "unit" || c == "month" || c == "format" || numberWords[next] != "" || len(e.lemmas) > 0 && e.lemmas[0] != next || strings.HasSuffix(next, "s") {
		return "", false
	}
	if strings.Contains(e.pos, "v") || word == "for" && e.pos == "a" {
		return word, true
	}
	return "", false
}

var textSpeakObject = set(`me u you him her us them my ur your his their our the a an this that it`)

// americanSpelling is a British spelling's American form when the
// lexicon knows the latter ("neighbour" / "neighbor", "apologise" /
// "apologize", "centre", "analyse", "paediatric", "travelling",
// "licence", "catalogue"); "" otherwise.
func (v *Verifier) americanSpelling(w string) string {
	if len(w) < 5 {
		return ""
	}
	_, known := v.lex[w]
	for _, r := range britishEndings {
		i := strings.Index(w, r.uk)
		if i < 1 || r.end && !strings.HasSuffix(w, r.uk) && !strings.HasSuffix(w, r.uk+"s") && !strings.HasSuffix(w, r.uk+"d") {
			continue
		}
		if r.unknown && known {
			continue
		}
		us := w[:i] + r.us + w[i+len(r.uk):]
		if _, ok := v.lex[us]; ok && us != w {
			return us
		}
	}
	return ""
}

var britishEndings = []struct {
	uk, us       string
	end, unknown bool // only at the end of the word; only for a word the lexicon lacks
}{
	{"our", "or", false, false}, {"isation", "ization", false, false}, {"ise", "ize", false, false}, {"ising", "izing", false, false},
	{"yse", "yze", false, false}, {"ysing", "yzing", false, false}, {"tre", "ter", true, false}, {"ogue", "og", true, false},
	{"ence", "ense", true, false}, {"ae", "e", false, true}, {"oe", "e", false, true}, {"lled", "led", true, true},
	{"lling", "ling", true, true}, {"ller", "ler", true, true},
}
