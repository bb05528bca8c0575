package main

import (
	"regexp"
	"strings"
)

// Program is a binary as its --help describes it.
type Program struct {
	Name        string
	Description string // the help text before its flags
	Flags       []Flag
	Subcommands []*Command
}

// Command is one subcommand.
type Command struct {
	Name        string
	Summary     string // its line in the program's usage
	Description string
	Flags       []Flag
}

// Flag is one flag of Go's flag package: -name [type] and its usage.
type Flag struct {
	Name  string
	Arg   string // "string", "int", "duration", "FILE", ...; "" for a bool
	Usage string
}

// subcommandLine is a line of the program's usage listing a subcommand:
// "  lbgpt ask [flags] [PROMPT...]   ask one question".
var subcommandLine = regexp.MustCompile(`^  (\S+) ([a-z][a-z0-9-]*)\b(.*?)(?:\s{2,}(.*))?$`)

func parseProgram(name, help string) *Program {
	desc, flags := splitFlags(help)
	p := &Program{Name: name, Description: desc, Flags: flags}
	for _, line := range strings.Split(help, "\n") {
		m := subcommandLine.FindStringSubmatch(line)
		if m == nil || m[1] != name || m[2] == "help" {
			continue
		}
		p.Subcommands = append(p.Subcommands, &Command{Name: m[2], Summary: strings.TrimSpace(m[4])})
	}
	return p
}

func parseCommand(name, summary, help string) *Command {
	desc, flags := splitFlags(help)
	return &Command{Name: name, Summary: summary, Description: desc, Flags: flags}
}

// flagLine is flag.PrintDefaults' first line of a flag: "  -name type".
var flagLine = regexp.MustCompile(`^  -([A-Za-z0-9][A-Za-z0-9-]*)(?: (\S+))?$`)

// splitFlags splits help text into its description and the flags that
// flag.PrintDefaults listed.
func splitFlags(help string) (string, []Flag) {
	lines := strings.Split(strings.TrimRight(help, "\n"), "\n")
	var desc []string
	var flags []Flag
	for i := 0; i < len(lines); i++ {
		m := flagLine.FindStringSubmatch(lines[i])
		if m == nil {
			if len(flags) == 0 && strings.TrimSpace(lines[i]) != "Flags:" {
				desc = append(desc, lines[i])
			}
			continue
		}
		f := Flag{Name: m[1], Arg: m[2]}
		for i+1 < len(lines) && strings.HasPrefix(lines[i+1], "    \t") {
			i++
			f.Usage = strings.TrimSpace(f.Usage + " " + strings.TrimSpace(lines[i]))
		}
		flags = append(flags, f)
	}
	return strings.TrimSpace(strings.Join(desc, "\n")), flags
}
