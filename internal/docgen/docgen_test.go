package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// generate builds lbgpt and lbgptd and runs docgen on them.
func generate(t *testing.T) (progs []*Program, out string) {
	t.Helper()
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", bin+"/", "../../cmd/lbgpt", "../../cmd/lbgptd")
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, b)
	}
	out = t.TempDir()
	if err := run([]string{"-bin", bin, "-out", out}, os.Stderr); err != nil {
		t.Fatal(err)
	}
	progs, err := describeAll(func(name string, args ...string) (string, error) {
		return runHelp(filepath.Join(bin, name), args...)
	})
	if err != nil {
		t.Fatal(err)
	}
	return progs, out
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Every subcommand and every flag of the real binaries is in the man page
// and in each shell's completion; no path of the building machine is.
func TestGeneratedDocsListEverything(t *testing.T) {
	progs, out := generate(t)
	if len(progs) != 2 || len(progs[0].Subcommands) < 4 {
		t.Fatalf("parsed %d programs, lbgpt with %d subcommands; want lbgpt with ask, batch, status, demo", len(progs), len(progs[0].Subcommands))
	}
	home, _ := os.UserHomeDir()
	for _, p := range progs {
		files := map[string]string{
			"man":  read(t, filepath.Join(out, "man", p.Name+".1")),
			"bash": read(t, filepath.Join(out, "completions", "bash", p.Name)),
			"zsh":  read(t, filepath.Join(out, "completions", "zsh", "_"+p.Name)),
			"fish": read(t, filepath.Join(out, "completions", "fish", p.Name+".fish")),
		}
		for kind, text := range files {
			if home != "" && strings.Contains(text, home+"/") {
				t.Errorf("%s %s contains this machine's home %s", p.Name, kind, home)
			}
			for _, f := range p.Flags {
				if !strings.Contains(text, roffOrPlain(kind, "--"+f.Name)) {
					t.Errorf("%s %s lacks flag --%s", p.Name, kind, f.Name)
				}
			}
			for _, c := range p.Subcommands {
				if !strings.Contains(text, c.Name) {
					t.Errorf("%s %s lacks subcommand %s", p.Name, kind, c.Name)
				}
				if kind == "man" && !strings.Contains(text, ".SS "+p.Name+" "+c.Name+"\n") {
					t.Errorf("%s man page has no section for %s", p.Name, c.Name)
				}
				for _, f := range c.Flags {
					if !strings.Contains(text, roffOrPlain(kind, "--"+f.Name)) {
						t.Errorf("%s %s lacks %s --%s", p.Name, kind, c.Name, f.Name)
					}
				}
			}
		}
	}
	sub := map[string]bool{}
	for _, c := range progs[0].Subcommands {
		sub[c.Name] = true
		if c.Name == "ask" && len(c.Flags) < 5 {
			t.Errorf("ask has %d flags parsed, want its --model, --json, ...", len(c.Flags))
		}
	}
	for _, want := range []string{"ask", "batch", "status", "demo"} {
		if !sub[want] {
			t.Errorf("subcommand %s not found in lbgpt --help", want)
		}
	}
}

func roffOrPlain(kind, s string) string {
	if kind == "man" {
		return roff(s)
	}
	if kind == "fish" {
		return "-l " + strings.TrimPrefix(s, "--")
	}
	return s
}

// The man pages render without groff warnings; the bash completion
// completes subcommands and flags.
func TestGeneratedDocsWork(t *testing.T) {
	_, out := generate(t)
	if groff, err := exec.LookPath("groff"); err == nil {
		for _, name := range []string{"lbgpt", "lbgptd"} {
			var stderr bytes.Buffer
			cmd := exec.Command(groff, "-man", "-ww", "-z", filepath.Join(out, "man", name+".1"))
			cmd.Stderr = &stderr
			if err := cmd.Run(); err != nil || stderr.Len() > 0 {
				t.Errorf("groff %s.1: %v\n%s", name, err, stderr.String())
			}
		}
	} else {
		t.Log("groff not installed: man pages not rendered")
	}
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Fatal("bash is needed")
	}
	complete := func(line string) string {
		words := strings.Fields(line)
		if strings.HasSuffix(line, " ") {
			words = append(words, "")
		}
		script := `source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _${COMP_WORDS[0]}; printf '%s\n' "${COMPREPLY[@]}"`
		cmd := exec.Command(bash, append([]string{"--norc", "-c", script, "bash", filepath.Join(out, "completions", "bash", words[0])}, words...)...)
		b, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("bash completion of %q: %v\n%s", line, err, b)
		}
		return strings.Join(strings.Fields(string(b)), " ")
	}
	for line, want := range map[string]string{
		"lbgpt ":             "ask batch status demo",
		"lbgpt st":           "status",
		"lbgpt ask --max":    "--max-tokens",
		"lbgpt batch --conc": "--concurrency",
		"lbgptd --log-":      "--log-format --log-level",
		"lbgpt status --js":  "--json",
	} {
		if got := complete(line); !strings.Contains(got, want) {
			t.Errorf("complete %q = %q, want %q", line, got, want)
		}
	}
}
