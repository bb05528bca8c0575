package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/lbgpt/lbgpt/internal/sim"
)

// config is the TOML file given with -config; see the usage text.
type config struct {
	Seed        int64             `toml:"seed"`
	Models      []string          `toml:"models"`
	Deployments map[string]string `toml:"deployments"`
	Accounts    []accountConfig   `toml:"account"`
}

type accountConfig struct {
	Name     string        `toml:"name"`
	Key      string        `toml:"key"`
	RPM      int           `toml:"rpm"`
	TPM      int           `toml:"tpm"`
	TTFT     time.Duration `toml:"ttft"`      // a string such as "200ms"
	PerToken time.Duration `toml:"per_token"` // a string such as "5ms"
	Faults   sim.Faults    `toml:"faults"`
}

// loadConfig reads a config file strictly: a key it does not know is an
// error naming the key.
func loadConfig(path string) (sim.Options, error) {
	var c config
	md, err := toml.DecodeFile(path, &c)
	if err != nil {
		return sim.Options{}, fmt.Errorf("load config %s: %w", path, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
		}
		return sim.Options{}, fmt.Errorf("load config %s: unknown keys: %s", path, strings.Join(keys, ", "))
	}
	opts := sim.Options{Seed: c.Seed, Models: c.Models, Deployments: c.Deployments}
	for _, a := range c.Accounts {
		opts.Accounts = append(opts.Accounts, sim.Account{
			Name: a.Name, Key: a.Key, RPM: a.RPM, TPM: a.TPM, TTFT: a.TTFT, PerToken: a.PerToken, Faults: a.Faults,
		})
	}
	return opts, nil
}
