package verify

// The word classes below decide how a word may be matched. They are written
// for English prompts and kept deliberately small: a word not listed here is
// an ordinary content word, which must align with a word on the other side.

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
var stop = set(`a an the this that these those it its it's there here
	be is am are was were been being do does did done doing have has had having
	will would shall should can could may might must ought
	i me my mine myself we us our ours you your yours yourself they them their theirs
	he him his she her hers ones someone something anything everything
	what how which whatever whichever
	of in on at for with about as into per via within
	and or but so if then also just too very quite rather really actually
	s t d ll re ve m
	some any way ways kind sort type thing things stuff
	get got`)

// filler is politeness and request phrasing, which may go unaligned.
var filler = set(`please pls kindly thanks thank thx hi hello hey dear
	tell show give explain describe say know find
	want wanna need like wonder wondering curious
	help assist mind let lets use uses using used utilize
	quick quickly
	question ask asking answer`)

// negations must match in number; "no" and "not" count as one.
var negation = map[string]string{
	"not": "not", "no": "not", "never": "never", "none": "none", "nothing": "nothing",
	"nobody": "nobody", "nowhere": "nowhere", "neither": "neither", "nor": "nor", "without": "without",
}

// relational words order their arguments: "5 km to miles" is not "5 miles
// to km". They must match, and the words they govern must too.
var relational = map[string]string{
	"to": "to", "into": "to", "onto": "to", "toward": "to", "towards": "to", "from": "from",
	"than": "than", "by": "by", "before": "before", "after": "after", "since": "since", "until": "until",
	"versus": "versus", "vs": "versus", "against": "against", "over": "over", "under": "under",
	"above": "above", "below": "below",
}

// strict words have no synonyms: wh-words that change the question,
// quantifiers, comparatives and superlatives, and words whose variants
// change the answer's form (formats, languages, units of measure).
var strict = set(`who whom whose where when why
	all every each few many several both only more most less least fewer fewest much
	better best worse worst further furthest farther farthest
	first second third last next previous
	json csv tsv yaml yml xml html markdown table tables list lists bullet bullets bulleted
	paragraph paragraphs sentence sentences word words line lines haiku poem essay tweet email
	letter summary outline code script regex sql pdf
	english french german spanish italian portuguese russian chinese mandarin cantonese japanese
	korean arabic hindi dutch swedish norwegian danish finnish polish turkish greek latin hebrew
	python java javascript typescript golang rust ruby php kotlin swift scala haskell bash perl
	celsius fahrenheit kelvin metric imperial`)

// numberWords are spelled-out numbers, compared as digits.
var numberWords = map[string]string{
	"zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
	"seven": "7", "eight": "8", "nine": "9", "ten": "10", "eleven": "11", "twelve": "12",
	"thirteen": "13", "fourteen": "14", "fifteen": "15", "sixteen": "16", "seventeen": "17",
	"eighteen": "18", "nineteen": "19", "twenty": "20", "thirty": "30", "forty": "40",
	"fifty": "50", "sixty": "60", "seventy": "70", "eighty": "80", "ninety": "90",
	"hundred": "100", "thousand": "1000", "million": "1000000", "billion": "1000000000",
	"dozen": "12", "half": "0.5", "twice": "2x", "double": "2x", "triple": "3x",
}

// units of measure have no synonyms, only their abbreviations and spellings,
// which are rewritten to one form before comparing.
var units = set(`second seconds minute minutes hour hours day days week weeks month months
	year years decade decades century centuries millisecond milliseconds
	meter meters kilometer kilometers centimeter centimeters millimeter millimeters
	mile miles yard yards foot feet inch inches gram grams kilogram kilograms milligram
	milligrams pound pounds ounce ounces ton tons tonne tonnes liter liters milliliter
	milliliters gallon gallons quart quarts pint pints cup cups tablespoon tablespoons
	teaspoon teaspoons degree degrees byte bytes kilobyte kilobytes megabyte megabytes
	gigabyte gigabytes terabyte terabytes bit bits dollar dollars euro euros yen percent
	calorie calories kilocalorie kilocalories watt watts volt volts acre acres hectare hectares
	knot knots mph kph`)

// spelling maps abbreviations and British spellings of units to one form.
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
	"usd": "dollar", "eur": "euro", "kcal": "kilocalorie", "colour": "color", "colours": "colors",
	"favourite": "favorite", "tyre": "tire", "tyres": "tires", "centre": "center",
}

// synonyms WordNet's most frequent senses miss but prompts use
// interchangeably, one group per line.
var synonymGroups = [][]string{
	{"remove", "delete", "erase"},
	{"create", "make", "generate"},
	{"fix", "repair"},
	{"big", "large", "huge"},
	{"fast", "quick", "speedy"},
	{"faster", "quicker"},
	{"fastest", "quickest"},
	{"choose", "pick", "select"},
	{"begin", "start"},
	{"finish", "end"},
}
