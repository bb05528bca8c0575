// Package packaging holds lbgptd's systemd units and the Debian package
// description; its tests build the package with `make deb`, list it, and
// check the units it ships with systemd-analyze verify.
package packaging

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

var (
	debOnce sync.Once
	debPath string
	debErr  string
	debBin  string
)

// deb runs `make deb` once (nfpm through go run; the first run compiles
// it) and returns the package.
func deb(t *testing.T) string {
	t.Helper()
	debOnce.Do(func() {
		dir, err := os.MkdirTemp("", "lbgpt-deb-")
		if err != nil {
			debErr = err.Error()
			return
		}
		debBin = dir
		cmd := exec.Command("make", "-C", "..", "deb", "BIN="+dir)
		if out, err := cmd.CombinedOutput(); err != nil {
			debErr = "make deb: " + err.Error() + "\n" + string(out)
			return
		}
		m, _ := filepath.Glob(filepath.Join(dir, "lbgpt_*.deb"))
		if len(m) != 1 {
			debErr = "make deb made no lbgpt_*.deb"
			return
		}
		debPath = m[0]
	})
	if debErr != "" {
		t.Fatal(debErr)
	}
	return debPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if debBin != "" {
		os.RemoveAll(debBin)
	}
	os.Exit(code)
}

func need(t *testing.T, tool, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err != nil {
		t.Fatalf("%s is needed (apt-get install %s; .ci/run installs it)", tool, pkg)
	}
	return p
}

// The package holds the binaries, both pairs of units, the sysusers file,
// the example config, the man pages and the completions of three shells.
func TestDebContents(t *testing.T) {
	dpkg := need(t, "dpkg-deb", "dpkg")
	pkg := deb(t)
	out, err := exec.Command(dpkg, "-c", pkg).Output()
	if err != nil {
		t.Fatalf("dpkg-deb -c: %v", err)
	}
	var files []string
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) >= 6 && !strings.HasSuffix(f[5], "/") {
			files = append(files, strings.TrimPrefix(f[5], "."))
		}
	}
	for _, want := range []string{
		"/usr/bin/lbgpt", "/usr/bin/lbgptd",
		"/usr/lib/systemd/user/lbgptd.socket", "/usr/lib/systemd/user/lbgptd.service",
		"/usr/lib/systemd/system/lbgptd.socket", "/usr/lib/systemd/system/lbgptd.service",
		"/usr/lib/sysusers.d/lbgpt.conf",
		"/usr/share/doc/lbgpt/lbgpt.toml.example",
		"/usr/share/man/man1/lbgpt.1", "/usr/share/man/man1/lbgptd.1",
		"/usr/share/bash-completion/completions/lbgpt", "/usr/share/bash-completion/completions/lbgptd",
		"/usr/share/zsh/vendor-completions/_lbgpt", "/usr/share/zsh/vendor-completions/_lbgptd",
		"/usr/share/fish/vendor_completions.d/lbgpt.fish", "/usr/share/fish/vendor_completions.d/lbgptd.fish",
	} {
		if !slices.Contains(files, want) {
			t.Errorf("the package lacks %s; it has:\n%s", want, strings.Join(files, "\n"))
		}
	}
	info, err := exec.Command(dpkg, "-I", pkg).Output()
	if err != nil || !strings.Contains(string(info), "Package: lbgpt") || !strings.Contains(string(info), "postinst") {
		t.Errorf("dpkg-deb -I: %v\n%s", err, info)
	}
}

// systemd-analyze verify passes, without a warning, on the units the
// package ships (ExecStart pointed at the built lbgptd, since /usr/bin has
// none here), with their Documentation= man pages resolved from the
// package.
func TestUnitsVerify(t *testing.T) {
	analyze := need(t, "systemd-analyze", "systemd")
	dpkg := need(t, "dpkg-deb", "dpkg")
	pkg := deb(t)
	root := t.TempDir()
	if out, err := exec.Command(dpkg, "-x", pkg, root).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb -x: %v\n%s", err, out)
	}
	run := t.TempDir()
	os.Chmod(run, 0o700)
	for _, scope := range []string{"user", "system"} {
		t.Run(scope, func(t *testing.T) {
			dir := t.TempDir()
			var units []string
			for _, u := range []string{"lbgptd.socket", "lbgptd.service"} {
				b, err := os.ReadFile(filepath.Join(root, "usr/lib/systemd", scope, u))
				if err != nil {
					t.Fatal(err)
				}
				if u == "lbgptd.service" && !bytes.Contains(b, []byte("ExecStart=/usr/bin/lbgptd\n")) {
					t.Errorf("%s %s: ExecStart is not /usr/bin/lbgptd", scope, u)
				}
				b = bytes.ReplaceAll(b, []byte("/usr/bin/lbgptd"), []byte(filepath.Join(root, "usr/bin/lbgptd")))
				path := filepath.Join(dir, u)
				os.WriteFile(path, b, 0o644)
				units = append(units, path)
			}
			args := append([]string{"verify"}, units...)
			if scope == "user" {
				args = append([]string{"--user"}, args...)
			}
			cmd := exec.Command(analyze, args...)
			cmd.Env = append(os.Environ(), "MANPATH="+filepath.Join(root, "usr/share/man"), "XDG_RUNTIME_DIR="+run)
			out, err := cmd.CombinedOutput()
			if err != nil || len(bytes.TrimSpace(out)) > 0 {
				t.Errorf("systemd-analyze %s: %v\n%s", strings.Join(args, " "), err, out)
			}
		})
	}
}

// make install puts everything where a per-user install belongs, with the
// units' ExecStart in the chosen BINDIR.
func TestMakeInstall(t *testing.T) {
	dest, bin := t.TempDir(), t.TempDir()
	// CGO_ENABLED=0 as make deb builds: the binaries come from the build
	// cache TestDebContents filled (or fill it for it), not a second build.
	cmd := exec.Command("make", "-C", "..", "install", "BIN="+bin, "DESTDIR="+dest, "HOME=/home/u", "XDG_CONFIG_HOME=/home/u/.config", "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make install: %v\n%s", err, out)
	}
	for _, f := range []string{
		"/home/u/.local/bin/lbgpt", "/home/u/.local/bin/lbgptd",
		"/home/u/.config/systemd/user/lbgptd.socket", "/home/u/.config/systemd/user/lbgptd.service",
		"/home/u/.local/share/man/man1/lbgpt.1", "/home/u/.local/share/man/man1/lbgptd.1",
		"/home/u/.local/share/bash-completion/completions/lbgpt",
		"/home/u/.local/share/zsh/site-functions/_lbgptd",
		"/home/u/.config/fish/completions/lbgpt.fish",
	} {
		if _, err := os.Stat(filepath.Join(dest, f)); err != nil {
			t.Errorf("make install: %v", err)
		}
	}
	unit, _ := os.ReadFile(filepath.Join(dest, "/home/u/.config/systemd/user/lbgptd.service"))
	if !bytes.Contains(unit, []byte("ExecStart=/home/u/.local/bin/lbgptd\n")) {
		t.Errorf("installed unit does not start the installed lbgptd:\n%s", unit)
	}
	if fi, err := os.Stat(filepath.Join(dest, "/home/u/.config/lbgpt")); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("config directory: %v %v, want mode 0700", fi, err)
	}
}
