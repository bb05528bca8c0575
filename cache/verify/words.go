package verify

import "slices"

// The word lists below decide how a word may be matched. They are written
// for English prompts from general knowledge of how people phrase requests,
// not from the labelled sets: a word not listed is an ordinary content
// word, aligned softly and weighted by its rarity.

// set builds a lookup set from space-separated words.
func set(words string) map[string]bool {
	m := map[string]bool{}
	w := ""
	for _, r := range words + " " {
		if r == ' ' || r == '\n' || r == '\t' {
			if w != "" {
				m[w] = true
			}
			w = ""
			continue
		}
		w += string(r)
	}
	return m
}

// stop words carry grammar, not the question: articles, auxiliaries,
// pronouns, the loose prepositions and conjunctions, generic question
// words.
var stop = set(`a an the this that these those it its there here
	be is am are was were been being do does did done doing have has had having
	will would shall should can could may might must ought
	i me my mine myself we us our ours you your yours yourself they them their theirs
	he him his she her hers one ones someone something anything everything
	what how which whatever whichever whats hows whether
	of in on at for with about as per via within
	and or but so if then also just too very quite rather really actually
	s t d ll re ve m
	way ways kind sort type thing things stuff
	get got getting im ive id youre`)

// filler is politeness, chatter and the framing of a request, which may go
// unaligned: "explain X", "give me X", "what does X mean" and "tell me
// about X" ask for the same answer.
var filler = set(`please pls plz kindly thanks thank thx ty hi hello hey dear lol btw
	tell show give explain describe say know find define definition meaning mean means
	want wanna need needs like wonder wondering curious
	help assist mind let lets use uses using used utilize
	quick quickly q question ask asking answer
	exactly basically actually simply briefly
	guys folks someone anyone
	step steps tips tip guide overview
	possible go goes going went work works working
	again though um uh ugh hmm ok okay even`)

// negations must match in number; "no" and "not" count as one.
var negation = map[string]string{
	"not": "not", "no": "not", "never": "never", "none": "none",
	"nobody": "nobody", "nowhere": "nowhere", "neither": "neither", "nor": "nor",
	// "without X", "with no X", "nothing mean" and "non-technical" say "not".
	"without": "not", "nothing": "not", "non": "not",
}

// casualNegations are contractions typed without their apostrophe.
var casualNegations = map[string]string{
	"dont": "do", "doesnt": "does", "didnt": "did", "isnt": "is", "arent": "are", "wasnt": "was",
	"werent": "were", "cant": "can", "wont": "will", "shouldnt": "should", "wouldnt": "would",
	"couldnt": "could", "havent": "have", "hasnt": "has", "hadnt": "had", "aint": "is", "mustnt": "must",
}

// relational words order their arguments: "5 km to miles" is not "5 miles
// to km". Where both sides use one, it must govern the same words.
var relational = map[string]string{
	"to": "to", "into": "to", "onto": "to", "toward": "to", "towards": "to", "from": "from",
	"than": "than", "by": "by", "before": "before", "after": "after", "since": "since", "until": "until",
	"against": "against", "over": "over", "under": "under", "above": "above", "below": "below",
}

// categories are closed classes whose members are not interchangeable: two
// prompts that name different members, or one that names a member the
// other does not, want different answers.
var categories = func() map[string]string {
	m := map[string]string{}
	for cat, words := range classWords {
		for w := range set(words) {
			m[w] = cat
		}
	}
	return m
}()

// ClassOverlaps lists the words given to two closed classes (a mistake:
// the class such a word gets is left to map order).
func ClassOverlaps() []string {
	seen := map[string]string{}
	var dup []string
	for cat, words := range classWords {
		for w := range set(words) {
			if c, ok := seen[w]; ok && c != cat {
				dup = append(dup, w)
			}
			seen[w] = cat
		}
	}
	slices.Sort(dup)
	return dup
}

var classWords = map[string]string{
	"wh": `who whom whose where when why`,
	"degree": `all every everyone everybody each few many several both only some any most least fewer fewest
			always sometimes usually often rarely ever never
			more less better best worse worst further furthest farther farthest
			first last next previous latest earliest oldest newest current old new classic
			higher lower larger smaller bigger longer shorter heavier lighter cheaper older younger
			newer stronger weaker faster slower earlier later`,
	"format": `json csv tsv yaml yml xml html markdown table tables bullet bullets bulleted
			paragraph paragraphs sentence sentences haiku poem poems limerick sonnet essay tweet
			letter summary outline regex pdf diagram chart flowchart slogan story joke song acronym`,
	"language": `english french german spanish italian portuguese russian chinese mandarin cantonese
			japanese korean arabic hindi dutch swedish norwegian danish finnish polish turkish greek
			latin hebrew vietnamese thai indonesian swahili ukrainian czech romanian hungarian persian
			urdu bengali tagalog punjabi gujarati marathi tamil telugu kannada malayalam malay filipino
			cebuano yoruba igbo hausa amharic somali afrikaans zulu xhosa catalan basque welsh irish
			scottish gaelic icelandic estonian latvian lithuanian slovak slovenian croatian serbian
			bulgarian albanian macedonian bosnian georgian armenian azerbaijani kazakh uzbek mongolian
			nepali sinhala burmese khmer lao`,
	"proglang": `python java javascript typescript golang rust ruby php kotlin swift scala haskell
			bash zsh powershell perl lua elixir erlang clojure dart julia matlab fortran cobol csharp
			cpp sql c r js ts node nodejs deno react vue angular svelte django flask rails
			laravel npm yarn pnpm pip conda poetry cargo maven gradle excel pandas numpy
			mysql postgresql sqlite mongodb redis mariadb dynamodb cassandra elasticsearch`,
	"tool": `jest vitest mocha pytest unittest junit rspec cypress playwright selenium puppeteer
			terraform pulumi ansible helm kustomize jenkins circleci github gitlab bitbucket jira
			webpack vite esbuild eslint nginx haproxy traefik kafka rabbitmq grafana prometheus
			datadog splunk kibana vscode intellij pycharm kubectl minikube openshift airflow dbt
			hadoop bigquery redshift databricks`,
	"platform": `windows mac macos osx linux ubuntu debian fedora centos rhel arch android ios
			ipados iphone ipad aws gcp azure heroku vercel netlify docker podman chrome firefox safari
			playstation xbox nintendo`,
	"unit": `second seconds minute minutes hour hours day days week weeks month months year years
			decade decades century centuries millisecond milliseconds meter meters kilometer kilometers
			centimeter centimeters millimeter millimeters mile miles yard yards foot feet inch inches
			gram grams kilogram kilograms milligram milligrams pound pounds ounce ounces ton tons tonne
			tonnes liter liters milliliter milliliters gallon gallons quart quarts pint pints cup cups
			tablespoon tablespoons teaspoon teaspoons degree degrees byte bytes kilobyte kilobytes
			megabyte megabytes gigabyte gigabytes terabyte terabytes bit bits kilobit kilobits megabit megabits gigabit gigabits dollar dollars euro euros
			yen percent calorie calories kilocalorie kilocalories watt watts volt volts acre acres
			hectare hectares knot knots mph kph mps fps kmps mbps gbps kbps mbitps gbitps mbyteps gbyteps kbyteps celsius fahrenheit kelvin metric imperial`,
	"month": `january february march april may june july august september october november
			december monday tuesday wednesday thursday friday saturday sunday spring summer autumn
			winter q1 q2 q3 q4 yesterday today tomorrow tonight weekend weekday annual
			annually monthly weekly daily quarterly hourly`,
	"direction": `north south east west left right up down upper inside outside
			front back buy sell import export upload download install uninstall enable disable
			encrypt decrypt encode decode compress decompress increase decrease raise
			prevent treat cure diagnose
			add subtract multiply divide min max minimum maximum start stop open close push pull
			send receive lend borrow input output male female boy girl men women man woman
			pros cons advantages disadvantages benefits risks causes symptoms cause symptom signs
			remove delete setup
			true false odd even positive negative
			local remote internal external inbound outbound incoming outgoing public private
			upstream downstream frontend backend horizontal vertical junior senior gross net
			static dynamic
			approve reject request grant deny refund charge credit debit deposit withdraw hire fire
			lend borrow loan owe`,
	"aggregate": `sum count average median total`,
	"role": `landlord landlords tenant tenants renter renters lessee lessor employer employers employee employees
			interviewer interviewers interviewee candidate candidates applicant applicants buyer buyers seller sellers
			purchaser vendor lender lenders borrower borrowers creditor creditors debtor debtors teacher teachers
			student students pupil pupils doctor doctors patient patients
			manager managers supervisor supervisors subordinate subordinates reportee reportees
			sender senders recipient recipients payer payers payee payees`,
}

// loneOK are closed-class words that may stand on one side only: they
// qualify the question loosely ("how do I *first* check", "what do *most*
// people use"), where a different member on the other side would still
// change it.
//
// A universal quantifier ("all", "every", "each") says what a bare plural
// already says ("list all tables" / "list tables"), and "only" narrows
// what the rest of the prompt states ("run only one test").
var loneOK = set(`most many usually often current new any some both always better last daily
	all every each only
	day days year years month months week weeks minute minutes hour hours second seconds
	century centuries decade decades
	up down back front right left open close start stop add min max
	input output even`)

// loneClass are the classes whose words may stand on one side only: a
// terse prompt drops its wh-word ("tax filing deadline?"), and a
// direction word alone ("prevent shin splints", "received a letter")
// or a party alone ("my landlord") names no other; nor does a tool ("run
// the tests" / "run the tests with pytest"), where another tool on the
// other side would.
var loneClass = map[string]bool{"wh": true, "direction": true, "aggregate": true, "role": true, "tool": true}

// numberWords are spelled-out numbers, compared as digits.
var numberWords = map[string]string{
	"zero": "0", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
	"seven": "7", "eight": "8", "nine": "9", "ten": "10", "eleven": "11", "twelve": "12",
	"thirteen": "13", "fourteen": "14", "fifteen": "15", "sixteen": "16", "seventeen": "17",
	"eighteen": "18", "nineteen": "19", "twenty": "20", "thirty": "30", "forty": "40",
	"fifty": "50", "sixty": "60", "seventy": "70", "eighty": "80", "ninety": "90",
	"hundred": "100", "thousand": "1000", "million": "1000000", "billion": "1000000000",
	"dozen": "12", "half": "0.5", "halve": "0.5", "halved": "0.5", "halves": "0.5", "twice": "2x", "double": "2x", "triple": "3x",
}

// spelling maps abbreviations and spellings of one word to one form.
var spelling = map[string]string{
	"km": "kilometer", "kms": "kilometers", "kilometre": "kilometer", "kilometres": "kilometers",
	"metre": "meter", "metres": "meters", "cm": "centimeter", "centimetre": "centimeter",
	"centimetres": "centimeters", "mm": "millimeter", "millimetre": "millimeter",
	"millimetres": "millimeters", "mi": "mile", "ft": "foot", "yd": "yard", "kg": "kilogram",
	"kgs": "kilograms", "mg": "milligram", "lb": "pound", "lbs": "pounds", "oz": "ounce",
	"litre": "liter", "litres": "liters", "ml": "milliliter", "millilitre": "milliliter",
	"millilitres": "milliliters", "gal": "gallon", "tbsp": "tablespoon", "tsp": "teaspoon",
	"sec": "second", "secs": "seconds", "min": "minute", "mins": "minutes", "hr": "hour",
	"hrs": "hours", "kb": "kilobyte", "mb": "megabyte", "gb": "gigabyte", "tb": "terabyte",
	"usd": "dollar", "eur": "euro", "kcal": "kilocalorie", "cal": "calorie", "cals": "calories",
	"g": "gram", "yr": "year", "yrs": "years", "yo": "year", "mo": "month", "mos": "months",
	"wk": "week", "wks": "weeks", "hz": "hertz", "pct": "percent",
	"colour": "color", "colours": "colors", "favourite": "favorite", "tyre": "tire", "tyres": "tires",
	"centre": "center", "organise": "organize", "realise": "realize", "analyse": "analyze",
	"behaviour": "behavior", "optimise": "optimize", "licence": "license", "defence": "defense",
	"grey": "gray", "cheque": "check", "programme": "program", "catalogue": "catalog",
	"js": "javascript", "ts": "typescript", "py": "python", "nodejs": "node",
	"osx": "macos", "mac": "macos", "win": "windows", "postgres": "postgresql", "psql": "postgresql",
	"mongo": "mongodb", "k8s": "kubernetes", "kube": "kubernetes", "pg": "postgresql",
}

// abbreviations people type in prompts, by their full form (one or more
// words). Ambiguous short forms are left out.
var abbreviations = map[string]string{
	"repo": "repository", "repos": "repositories", "env": "environment", "envs": "environments",
	"var": "variable", "vars": "variables", "perf": "performance", "approx": "approximately",
	"config": "configuration", "configs": "configurations", "cfg": "configuration",
	"prod": "production", "dev": "development", "db": "database", "dbs": "databases",
	"app": "application", "apps": "applications", "info": "information", "docs": "documentation",
	"doc": "document", "dir": "directory", "dirs": "directories", "msg": "message", "msgs": "messages",
	"pic": "picture", "pics": "pictures", "img": "image", "imgs": "images", "pkg": "package",
	"pkgs": "packages", "lib": "library", "libs": "libraries", "func": "function", "funcs": "functions",
	"fn": "function", "param": "parameter", "params": "parameters", "arg": "argument",
	"args": "arguments", "auth": "authentication", "admin": "administrator", "async": "asynchronous",
	"sync": "synchronous", "temp": "temperature", "tmp": "temporary", "max": "maximum",
	"avg": "average", "diff": "difference", "calc": "calculate", "w": "with",
	"wo": "without", "bc": "because", "cuz": "because", "coz": "because", "u": "you", "ur": "your",
	"y": "why", "b4": "before", "gonna": "going", "gotta": "have", "kinda": "kind",
	"tho": "though", "thru": "through", "abt": "about", "ppl": "people", "govt": "government",
	"dept": "department", "mgmt": "management", "mgr": "manager", "emp": "employee",
	"yoy": "year over year", "mom": "month over month", "qoq": "quarter over quarter",
	"ytd": "year to date", "roi": "return on investment", "apr": "annual percentage rate",
	"apy": "annual percentage yield", "bp": "blood pressure",
	"ai": "artificial intelligence", "nlp": "natural language processing", "llm": "large language model",
	"os": "operating system", "ui": "user interface", "ux": "user experience",
	"gui": "graphical interface", "vm": "virtual machine", "vms": "virtual machines",
	"cpu": "processor", "gpu": "graphics card", "ram": "memory", "hdd": "hard drive",
	"ssd": "solid state drive", "pw": "password", "pwd": "password", "acct": "account",
	"addr": "address", "attr": "attribute", "attrs": "attributes", "char": "character",
	"chars": "characters", "str": "string", "int": "integer", "obj": "object", "len": "length",
	"num": "number", "nums": "numbers", "ref": "reference", "req": "request",
	"reqs": "requests", "resp": "response", "src": "source", "dest": "destination", "ver": "version",
	"v": "version", "vs": "versus", "ex": "example", "eg": "example", "ie": "that is",
	"etc": "etcetera", "asap": "soon", "fyi": "information", "imo": "opinion", "tbh": "honestly",
	"idk": "not know", "iirc": "remember", "afaik": "know", "rn": "now", "smth": "something",
	"sth": "something", "sb": "somebody", "bday": "birthday", "veggie": "vegetable",
	"veggies": "vegetables", "fridge": "refrigerator",
	"uni": "university", "prof": "professor", "hw": "homework", "ppt": "presentation",
	"bf": "boyfriend", "gf": "girlfriend", "kid": "child", "kids": "children",
	"dr": "doctor", "meds": "medication", "med": "medication", "rx": "prescription",
	"hiit": "high intensity interval training", "cardio": "cardiovascular", "pr": "pull request",
	"prs": "pull requests", "ci": "continuous integration", "cd": "continuous deployment",
	"tf": "terraform", "gh": "github", "regexp": "regex",
	// An engineer's shorthand.
	"deps": "dependencies", "dep": "dependency", "cmd": "command", "cmds": "commands", "hdr": "header",
	"hdrs": "headers", "svc": "service", "svcs": "services", "impl": "implementation", "perms": "permissions",
	"cert": "certificate", "certs": "certificates", "creds": "credentials", "col": "column", "cols": "columns",
	"tbl": "table", "dupe": "duplicate", "dupes": "duplicates", "dedupe": "deduplicate", "proc": "process",
	"procs": "processes", "mem": "memory",
	"spec": "specification", "specs": "specifications", "stats": "statistics", "stat": "statistic",
	"prob": "probability", "eqn": "equation", "eq": "equation", "sqrt": "square root",
	"deg": "degree", "ms": "millisecond", "gig": "gigabyte", "gigs": "gigabytes",
	"comp": "compensation", "rev": "revenue", "bal": "balance", "amt": "amount",
	"qty": "quantity", "inv": "invoice", "po": "purchase order", "sop": "procedure",
	"mtg": "meeting", "cust": "customer", "custs": "customers", "biz": "business",
	"pov": "point of view", "diy": "do it yourself", "fav": "favorite", "fave": "favorite",
	"convo": "conversation", "intro": "introduction", "sub": "subscription", "subs": "subscriptions",
	"exp": "experience", "sal": "salary", "hrly": "hourly", "df": "dataframe",
	"hsa": "health savings account", "ww1": "world war first", "ww2": "world war second",
	"wwi": "world war first", "wwii": "world war second",
	// The office's shorthand.
	"pto": "paid time off", "mfa": "multi factor authentication",
	"2fa": "two factor authentication", "ooo": "out of office", "wfh": "work from home",
	"hrbp": "hr business partner", "espp": "employee stock purchase plan", "tmc": "travel management company",
	"pip": "performance improvement plan", "loa": "leave of absence", "eod": "end of day",
	"cob": "close of business", "fte": "full time employee", "kt": "knowledge transfer",
	"vl": "vacation leave",
}

// synonyms WordNet's most frequent senses miss but prompts use
// interchangeably, one group per line.
var synonymGroups = [][]string{
	{"remove", "delete", "erase", "strip", "drop", "rid", "clear", "eliminate", "uninstall", "nuke"},
	{"upgrade", "update", "bump"},
	{"terminal", "console", "cli", "shell"},
	{"create", "make", "generate", "build", "produce", "craft", "compose", "draft", "write"},
	{"fix", "repair", "solve", "resolve", "troubleshoot", "debug"},
	{"big", "large", "huge", "size"},
	{"fast", "quick", "speedy", "rapid"},
	{"faster", "quicker", "speed", "speedup"},
	{"fastest", "quickest"},
	{"choose", "pick", "select", "decide"},
	{"begin", "start", "launch", "run", "spin", "boot"},
	{"finish", "end", "complete"},
	{"check", "verify", "confirm", "test", "see", "tell", "determine", "detect"},
	{"difference", "differ", "different", "distinguish", "compare", "comparison", "versus"},
	{"calculate", "compute", "figure", "work", "determine", "estimate"},
	{"reverse", "flip", "backwards", "invert"},
	{"install", "setup", "set"},
	{"list", "enumerate", "name"},
	{"mean", "meaning", "definition", "define", "purpose"},
	{"convert", "change", "turn", "transform"},
	{"good", "great", "decent", "healthy", "ideal", "recommended"},
	{"cheap", "cheapest", "affordable", "budget", "inexpensive"},
	{"limit", "cap", "maximum", "max"},
	{"use", "application", "applications", "purpose", "used"},
	{"recipe", "cook", "cooking", "make"},
	{"kill", "terminate", "stop", "end"},
	{"show", "display", "print", "output", "list", "view"},
	{"find", "search", "locate", "look"},
	{"improve", "boost", "increase", "optimize", "better"},
	{"reduce", "lower", "decrease", "cut", "minimize"},
	{"allowed", "legal", "permitted", "can"},
	{"cost", "price", "expensive", "pay"},
	{"error", "issue", "problem", "bug"},
	{"car", "vehicle", "auto"},
	{"child", "kid", "toddler"},
	{"job", "work", "position", "role"},
	{"keep", "store", "last", "stay"},
	{"outdoors", "outside", "outdoor"},
	{"largest", "biggest"},
	{"smallest", "tiniest"},
	// The extremes of a size are its maximum and minimum ("the largest
	// sum I can withdraw", "the longest term"); a universal quantifier is
	// one in any form.
	{"maximum", "max", "largest", "biggest", "highest", "longest", "most"},
	{"minimum", "min", "smallest", "lowest", "shortest", "least", "fewest"},
	{"all", "every", "each"},
	{"newest", "latest", "recent", "current"},
	{"usual", "common", "typical", "normal"},
	{"avoid", "prevent", "stop"},
	{"oral", "verbal"},
	{"income", "money", "earnings"},
	{"fire", "sack", "dismiss", "terminate"},
	{"tenant", "renter", "lessee"}, {"tenants", "renters"}, {"landlord", "lessor"}, {"employer", "boss"},
	{"candidate", "applicant", "interviewee"}, {"candidates", "applicants"}, {"buyer", "purchaser"}, {"seller", "vendor"},
	{"student", "pupil"}, {"students", "pupils"}, {"doctor", "gp", "physician"},
}
