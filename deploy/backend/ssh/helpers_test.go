package ssh

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/davit-deploy/davit/deploy"
	"github.com/davit-deploy/davit/deploy/sshtest"
)

// testOptions reach a fleet without touching the user's own ssh setup: no
// ~/.ssh/config, no agent, the fleet's key and known_hosts.
func testOptions(f *sshtest.Fleet) Options {
	return Options{
		ConfigFile:      "none",
		KnownHostsFiles: []string{f.KnownHostsPath},
		IdentityFiles:   []string{f.ClientKeyPath},
		AgentSocket:     "none",
		ConnectTimeout:  10 * time.Second,
	}
}

func newDialer(t testing.TB, opts Options) *Dialer {
	t.Helper()
	d, err := NewDialer(opts)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func connect(t testing.TB, d *Dialer, h *deploy.Host) *Backend {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	b, err := d.ConnectBackend(ctx, h)
	if err != nil {
		t.Fatalf("connect %s: %v", h, err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// fleetBackend starts one server and connects to it.
func fleetBackend(t testing.TB, opts sshtest.Options, mod func(*Options)) (*sshtest.Fleet, *Backend) {
	t.Helper()
	f := sshtest.Start(t, opts)
	o := testOptions(f)
	if mod != nil {
		mod(&o)
	}
	return f, connect(t, newDialer(t, o), f.Servers[0].DeployHost())
}

// output runs a shell line and returns stdout, failing the test on error
// or a non-zero exit.
func output(t testing.TB, b deploy.Backend, line string) string {
	t.Helper()
	var out, errb bytes.Buffer
	res, err := b.Run(context.Background(), &deploy.Command{Args: []string{line}}, &out, &errb)
	if err != nil {
		t.Fatalf("%s: %v", line, err)
	}
	if res.ExitStatus != 0 {
		t.Fatalf("%s: exit %d: %s", line, res.ExitStatus, errb.String())
	}
	return strings.TrimSpace(out.String())
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func readFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
