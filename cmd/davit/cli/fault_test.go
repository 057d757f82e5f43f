package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/davit-deploy/davit/deploy/sshtest"
)

// The fault suite: a fleet failing the way fleets do, against real sshd
// servers, with davit run as the CLI in a process of its own (so Ctrl-C
// is a real signal). The deploy recipe's own faults (two deploys at once,
// a lock left by a crashed run, a host failing a hook) are tested beside
// the recipe.

// faultProject writes a deploy of a small copied app to hosts host1 and
// host2, whose build step (after deploy:updated) marks that it started on
// each host and then takes 60 s on host1 and 3 s on host2 (a host that
// fails does not stop the others' step: the run waits for theirs), and an
// ssh_config for the fleet with extra lines for every host (e.g.
// keepalive settings).
func faultProject(t *testing.T, fleet *sshtest.Fleet, sshExtra string) (dir, sshConfig string) {
	t.Helper()
	dir = t.TempDir()
	must(t, os.MkdirAll(filepath.Join(dir, "app"), 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "app", "index.html"), []byte("welcome\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "Deployfile"), []byte(`
use("deploy")
set("application", "fault")
set("deploy_to", "/srv/fault")
set("scm", "copy")
set("copy_dir", "app")
def production():
    server("host1", roles = ["app"])
    server("host2", roles = ["app"])
stage("production", production)
task("build", lambda ctx: on(roles("app"), lambda h: h.execute("echo started > /srv/fault/build-started; sleep " + ("60" if h.name == "host1" else "3"))))
after("deploy:updated", "build")
`), 0o644))
	base, err := os.ReadFile(fleet.SSHConfigPath)
	must(t, err)
	sshConfig = filepath.Join(dir, "ssh_config")
	must(t, os.WriteFile(sshConfig, append(base, []byte("Host *\n"+sshExtra)...), 0o600))
	return dir, sshConfig
}

// waitBuilding waits until the build step runs on every server.
func waitBuilding(t *testing.T, fleet *sshtest.Fleet) {
	t.Helper()
	for _, s := range fleet.Servers {
		waitForFile(t, filepath.Join(s.IsolatedDir("/srv/fault"), "build-started"), 30*time.Second)
	}
}

func startFaultFleet(t *testing.T) *sshtest.Fleet {
	t.Helper()
	fleet := sshtest.Start(t, sshtest.Options{N: 2, Isolate: []string{"/srv/fault"}})
	t.Cleanup(func() {
		for _, s := range fleet.Servers {
			s.Resume()
		}
	})
	return fleet
}

// Ctrl-C while one host is frozen (keepalives off, so nothing else would
// notice): davit still exits 130 within the SSH backend's bound plus the
// undo's, undoes the other host, and says what the frozen one may keep.
func TestFaultFrozenHostCtrlC(t *testing.T) {
	fleet := startFaultFleet(t)
	dir, sshConfig := faultProject(t, fleet, "  ServerAliveInterval 0\n")
	cmd, out := startDavit(t, dir, "--format", "plain", "--ssh-config", sshConfig, "production", "deploy")
	waitBuilding(t, fleet)
	fleet.Servers[0].Freeze()
	must(t, cmd.Process.Signal(os.Interrupt))
	if code := exitStatus(t, cmd, 45*time.Second); code != 130 {
		t.Fatalf("exit %d; want 130\n%s", code, out)
	}
	got := out.String()
	for _, want := range []string{
		"host did not answer",
		"host2: still on no release (new release",
		"removed)",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	// host2 was undone: no release left, no lock.
	left, _ := os.ReadDir(filepath.Join(fleet.Servers[1].IsolatedDir("/srv/fault"), "releases"))
	if len(left) != 0 {
		t.Errorf("host2 keeps releases %v", left)
	}
	if _, err := os.Stat(filepath.Join(fleet.Servers[1].IsolatedDir("/srv/fault"), ".davit", "lock")); err == nil {
		t.Error("host2 is still locked")
	}
}

// A second Ctrl-C exits at once, even while the first one's stop waits on
// the frozen host, and names the hosts that may be left locked.
func TestFaultFrozenHostSecondCtrlC(t *testing.T) {
	fleet := startFaultFleet(t)
	dir, sshConfig := faultProject(t, fleet, "  ServerAliveInterval 0\n")
	cmd, out := startDavit(t, dir, "--format", "plain", "--ssh-config", sshConfig, "production", "deploy")
	waitBuilding(t, fleet)
	fleet.Servers[0].Freeze()
	must(t, cmd.Process.Signal(os.Interrupt))
	time.Sleep(500 * time.Millisecond)
	must(t, cmd.Process.Signal(os.Interrupt))
	if code := exitStatus(t, cmd, 3*time.Second); code != 130 {
		t.Fatalf("exit %d; want 130\n%s", code, out)
	}
	for _, want := range []string{"interrupted again: exiting without waiting", "host1", "davit production deploy:unlock"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// With keepalives (fast ones here; 15 s × 3 by default) a host that froze
// is found dead on its own: the deploy fails, the other host is undone,
// and the error says why.
func TestFaultFrozenHostFoundByKeepalives(t *testing.T) {
	fleet := startFaultFleet(t)
	dir, sshConfig := faultProject(t, fleet, "  ServerAliveInterval 1\n  ServerAliveCountMax 2\n")
	cmd, out := startDavit(t, dir, "--format", "plain", "--ssh-config", sshConfig, "production", "deploy")
	waitBuilding(t, fleet)
	fleet.Servers[0].Freeze()
	if code := exitStatus(t, cmd, 45*time.Second); code != 1 {
		t.Fatalf("exit %d; want 1\n%s", code, out)
	}
	for _, want := range []string{"stopped answering keepalives", "host2: still on no release (new release"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// sshd killed while the fleet switches: the host that was lost is named,
// the other is moved back, and no host is left half-switched.
func TestFaultSSHDKilledMidPublish(t *testing.T) {
	fleet := startFaultFleet(t)
	dir, sshConfig := faultProject(t, fleet, "")
	// The restart hook of host1 marks that the switch happened there and
	// waits, so the test can kill its sshd while the publish is under way.
	df := filepath.Join(dir, "Deployfile")
	src, err := os.ReadFile(df)
	must(t, err)
	src = []byte(strings.Replace(string(src), `after("deploy:updated", "build")`, `
def restart(h):
    h.execute("echo switched > /srv/fault/restarting; sleep 60" if h.name == "host1" else "true")
task("app:restart", lambda ctx: on(roles("app"), restart))
after("deploy:published", "app:restart")`, 1))
	src = []byte(strings.Replace(string(src), `task("build"`, `task("unused_build"`, 1))
	must(t, os.WriteFile(df, src, 0o644))
	cmd, out := startDavit(t, dir, "--format", "plain", "--ssh-config", sshConfig, "production", "deploy")
	waitForFile(t, filepath.Join(fleet.Servers[0].IsolatedDir("/srv/fault"), "restarting"), 30*time.Second)
	must(t, fleet.Servers[0].Stop())
	if code := exitStatus(t, cmd, 45*time.Second); code != 1 {
		t.Fatalf("exit %d; want 1\n%s", code, out)
	}
	got := out.String()
	// host2 had no release before this, its first deploy: nothing to
	// move back to, so its current and the new release are removed.
	for _, want := range []string{"host1", "connection lost", "host2: removed the new release ", "; there was no release before"} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	if _, err := os.Lstat(filepath.Join(fleet.Servers[1].IsolatedDir("/srv/fault"), "current")); err == nil {
		t.Error("host2 still has a current link; it had none before the deploy")
	}
}

// A disk that fills while the release is exported: the deploy fails
// naming the host and the cause, the live release stays live, and the
// partial release and the lock are gone.
func TestFaultDiskFullDuringExport(t *testing.T) {
	fleet := sshtest.Start(t, sshtest.Options{N: 2, Isolate: []string{"/srv/fault"}, DiskSize: "3m"})
	dir, sshConfig := faultProject(t, fleet, "")
	df := filepath.Join(dir, "Deployfile")
	src, err := os.ReadFile(df)
	must(t, err)
	must(t, os.WriteFile(df, []byte(strings.Replace(string(src), `after("deploy:updated", "build")`, "", 1)), 0o644))
	deploy := func() (int, string) {
		return runDavit(t, "-f", df, "--format", "plain", "--ssh-config", sshConfig, "production", "deploy")
	}
	if code, out := deploy(); code != 0 {
		t.Fatalf("first deploy: exit %d\n%s", code, out)
	}
	live := currentRelease(t, fleet.Servers[0].IsolatedDir("/srv/fault"))
	// An incompressible 4 MB file does not fit in 3 MB.
	big := make([]byte, 4<<20)
	for i := range big {
		big[i] = byte(i*7919 ^ i>>9)
	}
	must(t, os.WriteFile(filepath.Join(dir, "app", "big.bin"), big, 0o644))
	code, out := deploy()
	if code != 1 {
		t.Fatalf("deploy onto a full disk: exit %d, want 1\n%s", code, out)
	}
	for _, want := range []string{"No space left on device", "still on " + live} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	for _, s := range fleet.Servers {
		d := s.IsolatedDir("/srv/fault")
		if got := currentRelease(t, d); got != live {
			t.Errorf("%s: current moved to %s", s.Name, got)
		}
		rels, _ := os.ReadDir(filepath.Join(d, "releases"))
		if len(rels) != 1 {
			t.Errorf("%s: releases %v; want only the live one", s.Name, rels)
		}
		if _, err := os.Stat(filepath.Join(d, ".davit", "lock")); err == nil {
			t.Errorf("%s: still locked", s.Name)
		}
	}
}
