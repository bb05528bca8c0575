package rpc

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestEnvStampsDiffer(t *testing.T) {
	e := &EnvStamps{Salt: "s4lt", Vars: map[string]string{
		"OPENAI_API_KEY":        EnvStamp("s4lt", "OPENAI_API_KEY", "sk-old-key"),
		"AZURE_OPENAI_API_KEY":  EnvStamp("s4lt", "AZURE_OPENAI_API_KEY", "az-key"),
		"AZURE_OPENAI_ENDPOINT": "",
	}}
	env := map[string]string{"OPENAI_API_KEY": "sk-new-key", "AZURE_OPENAI_API_KEY": " az-key\n", "AZURE_OPENAI_ENDPOINT": "https://x"}
	got := e.Differs(func(n string) string { return env[n] })
	if strings.Join(got, ",") != "AZURE_OPENAI_ENDPOINT,OPENAI_API_KEY" {
		t.Errorf("differs %v, want the changed key and the endpoint the daemon lacked", got)
	}
	if got := e.Differs(func(string) string { return "" }); got != nil {
		t.Errorf("a client that sets nothing differs in %v", got)
	}
	b, _ := json.Marshal(e)
	if strings.Contains(string(b), "sk-old-key") || strings.Contains(string(b), "az-key") {
		t.Errorf("the stamps show a value: %s", b)
	}
	if (*EnvStamps)(nil).Differs(func(string) string { return "x" }) != nil {
		t.Error("no stamps, yet differences")
	}
}
