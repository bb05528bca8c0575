package daemon

import (
	"os/exec"
	"strings"
	"testing"
)

// The direction of imports: the pipeline knows nothing of its callers or
// of JSON-RPC; the HTTP endpoint knows the pipeline but not the daemon;
// rpc stays standard library only.
func TestImportDirection(t *testing.T) {
	for _, tt := range []struct {
		pkg    string
		banned []string
	}{
		{"github.com/lbgpt/lbgpt/daemon/proxy", []string{"github.com/lbgpt/lbgpt/daemon", "github.com/lbgpt/lbgpt/daemon/httpapi"}},
		{"github.com/lbgpt/lbgpt/daemon/httpapi", []string{"github.com/lbgpt/lbgpt/daemon"}},
		{"github.com/lbgpt/lbgpt/rpc", []string{"github.com/"}},
	} {
		out, err := exec.Command("go", "list", "-deps", tt.pkg).Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", tt.pkg, err)
		}
		for dep := range strings.SplitSeq(strings.TrimSpace(string(out)), "\n") {
			if dep == tt.pkg {
				continue
			}
			for _, b := range tt.banned {
				if dep == b || (strings.HasSuffix(b, "/") && strings.HasPrefix(dep, b)) {
					t.Errorf("%s imports %s", tt.pkg, dep)
				}
			}
		}
	}
}
