package main

import (
	"context"
	"errors"
	"fmt"
	iofs "io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/lbgpt/lbgpt/rpc"
)

const tokenUsage = `Usage: lbgpt token [flags]

Prints the bearer token of lbgptd's OpenAI-compatible HTTP endpoint (the
[http] listen address of lbgpt.toml), for OpenAI clients pointed at it:

  OPENAI_BASE_URL=http://127.0.0.1:8088/v1 OPENAI_API_KEY=$(lbgpt token) python app.py

lbgptd creates the token on its first start with [http] listen set, in the
file http-token of its state directory ($STATE_DIRECTORY, else
$XDG_STATE_HOME/lbgpt, else ~/.local/state/lbgpt). To change it, delete the
file and restart lbgptd.

Flags:
`

func runToken(ctx context.Context, args []string, e env) error {
	fs := newFlagSet("token", tokenUsage, e)
	file := fs.String("file", "", "the token file (default "+filepath.Join(rpc.DefaultStateDir(), rpc.TokenFile)+")")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErr("token takes no arguments")
	}
	path := *file
	if path == "" {
		path = filepath.Join(rpc.DefaultStateDir(), rpc.TokenFile)
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, iofs.ErrNotExist) {
		return fmt.Errorf("no token at %s: lbgptd creates it when it starts with [http] listen set in lbgpt.toml (a daemon started with --demo has none: it takes any key)", path)
	}
	if err != nil {
		return err
	}
	token := strings.TrimSpace(string(b))
	if token == "" {
		return fmt.Errorf("%s is empty: delete it and restart lbgptd for a new token", path)
	}
	fmt.Fprintln(e.stdout, token)
	return nil
}
