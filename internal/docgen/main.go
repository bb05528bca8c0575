// Command docgen writes the man pages and the bash, zsh and fish
// completions of lbgpt and lbgptd from the commands' own --help, so they
// list exactly the subcommands and flags the binaries have. make runs it
// (make man completions) on freshly built binaries:
//
//	go run ./internal/docgen -bin BUILD_DIR -out OUT_DIR
//
// It writes OUT_DIR/man/{lbgpt,lbgptd}.1 and OUT_DIR/completions/{bash,zsh,fish}/.
// The binaries run with a neutral environment, so that defaults print as
// $HOME/... and $XDG_RUNTIME_DIR/... rather than the paths of the machine
// that built them.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
)

func main() {
	if err := run(os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "docgen:", err)
		os.Exit(1)
	}
}

func run(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("docgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	bin := fs.String("bin", "", "directory holding the lbgpt and lbgptd binaries")
	out := fs.String("out", "", "output directory")
	version := fs.String("version", "dev", "version for the man pages' footer")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *bin == "" || *out == "" {
		return errors.New("-bin and -out are required")
	}
	help := func(name string, args ...string) (string, error) { return runHelp(filepath.Join(*bin, name), args...) }
	progs, err := describeAll(help)
	if err != nil {
		return err
	}
	for _, p := range progs {
		files := map[string]string{
			filepath.Join("man", p.Name+".1"):                    manPage(p, *version),
			filepath.Join("completions", "bash", p.Name):         bashCompletion(p),
			filepath.Join("completions", "zsh", "_"+p.Name):      zshCompletion(p),
			filepath.Join("completions", "fish", p.Name+".fish"): fishCompletion(p),
		}
		for rel, text := range files {
			path := filepath.Join(*out, rel)
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				return err
			}
			if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
				return err
			}
		}
	}
	return nil
}

// runHelp runs a binary with --help in a neutral environment and returns
// what it printed (flag's usage goes to stderr; some go to stdout).
func runHelp(path string, args ...string) (string, error) {
	cmd := exec.Command(path, append(args, "--help")...)
	cmd.Env = []string{"HOME=$HOME", "XDG_RUNTIME_DIR=$XDG_RUNTIME_DIR", "PATH=/usr/bin:/bin"}
	b, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		return "", fmt.Errorf("%s --help: %w", path, err)
	}
	return string(b), nil
}

// describeAll reads lbgpt's and lbgptd's help, and that of every lbgpt
// subcommand.
func describeAll(help func(name string, args ...string) (string, error)) ([]*Program, error) {
	var progs []*Program
	for _, name := range []string{"lbgpt", "lbgptd"} {
		text, err := help(name)
		if err != nil {
			return nil, err
		}
		p := parseProgram(name, text)
		for i, sub := range p.Subcommands {
			text, err := help(name, sub.Name)
			if err != nil {
				return nil, err
			}
			p.Subcommands[i] = parseCommand(sub.Name, sub.Summary, text)
		}
		progs = append(progs, p)
	}
	return progs, nil
}
