package main

import (
	"testing"

	"github.com/lbgpt/lbgpt/rpc"
)

func TestAnsweredBy(t *testing.T) {
	backends := []rpc.BackendStatus{{Name: "sim-openai"}, {Name: "sim-azure"}, {Name: "sim-local"}}
	tests := []struct {
		name       string
		st         rpc.StatusResult
		perBackend map[string]int
		want       string
	}{
		{"the daemon's strategy, backends in status order",
			rpc.StatusResult{Strategy: "weighted", Backends: backends},
			map[string]int{"sim-azure": 5, "sim-openai": 2, "sim-local": 2},
			"Answered by: sim-openai 2, sim-azure 5, sim-local 2 (balancing strategy: weighted)."},
		{"a backend that answered nothing",
			rpc.StatusResult{Strategy: "priority", Backends: backends},
			map[string]int{"sim-openai": 9},
			"Answered by: sim-openai 9, sim-azure 0, sim-local 0 (balancing strategy: priority)."},
		{"a daemon that does not say its strategy",
			rpc.StatusResult{Backends: backends[:1]},
			map[string]int{"sim-openai": 1, "elsewhere": 1},
			"Answered by: sim-openai 1, elsewhere 1."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := answeredBy(&tt.st, tt.perBackend); got != tt.want {
				t.Errorf("got  %q\nwant %q", got, tt.want)
			}
		})
	}
}
