package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/lbgpt/lbgpt/config"
	"github.com/lbgpt/lbgpt/internal/sim"
)

// Demo is lbgpt's simulated upstream running in-process for lbgptd --demo:
// three accounts with different limits and speeds behind the three wire
// types lbgpt speaks (OpenAI, Azure OpenAI, OpenAI-compatible).
type Demo struct {
	Sim    *sim.Server
	URL    string         // http://127.0.0.1:PORT
	Config *config.Config // backends pointing at the simulator, keys resolved
	srv    *http.Server
}

// StartDemo starts the simulator on a loopback port.
func StartDemo() (*Demo, error) {
	accounts := []sim.Account{
		{Name: "sim-openai", Key: "sk-sim-openai-demo", RPM: 600, TPM: 60_000, TTFT: 120 * time.Millisecond, PerToken: 4 * time.Millisecond},
		{Name: "sim-azure", Key: "sim-azure-demo-key", RPM: 1200, TPM: 120_000, TTFT: 60 * time.Millisecond, PerToken: 2 * time.Millisecond},
		{Name: "sim-local", Key: "sim-local-demo-key", RPM: 120, TPM: 20_000, TTFT: 200 * time.Millisecond, PerToken: 6 * time.Millisecond},
	}
	s := sim.New(sim.Options{
		Accounts:    accounts,
		Deployments: map[string]string{"demo-gpt-4o-mini": "gpt-4o-mini", "demo-gpt-4o": "gpt-4o"},
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("start simulator: %w", err)
	}
	url := "http://" + ln.Addr().String()
	// Built as a config file would be, so the demo goes through the same
	// parsing, defaults and validation as a user's lbgpt.toml.
	text := fmt.Sprintf(`version = 1

[balance]
strategy = "weighted"

[[backend]]
name = "sim-openai"
type = "openai"
base_url = "%[1]s/v1"
api_key = %[2]q
limit_rpm = %[5]d
limit_tpm = %[6]d

[[backend]]
name = "sim-azure"
type = "azure"
base_url = "%[1]s"
api_key = %[3]q
api_version = "2024-10-21"
weight = 3
limit_rpm = %[7]d
limit_tpm = %[8]d
model_map = { "gpt-4o-mini" = "demo-gpt-4o-mini", "gpt-4o" = "demo-gpt-4o" }

[[backend]]
name = "sim-local"
type = "openai-compatible"
base_url = "%[1]s/v1"
api_key = %[4]q
limit_rpm = %[9]d
limit_tpm = %[10]d
`, url, accounts[0].Key, accounts[1].Key, accounts[2].Key,
		accounts[0].RPM, accounts[0].TPM, accounts[1].RPM, accounts[1].TPM, accounts[2].RPM, accounts[2].TPM)
	cfg, err := config.Parse([]byte(text), "demo")
	if err == nil {
		_, err = cfg.Resolve(func(string) string { return "" })
	}
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("demo config: %w", err)
	}
	srv := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			panic(err)
		}
	}()
	return &Demo{Sim: s, URL: url, Config: cfg, srv: srv}, nil
}

// Close stops the simulator.
func (d *Demo) Close() error {
	d.Sim.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return d.srv.Shutdown(ctx)
}
