package capdeploy

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/davit-deploy/davit/deploy/sshtest"
	"github.com/davit-deploy/davit/tasks"
)

// Two deploys started at the same moment against the same fleet: exactly
// one of them wins, every round, and the other is refused by the lock
// before it changed anything. No stray release, no leftover lock. (When
// every host was locked at once, each deploy could take some hosts, find
// the other's lock on the rest and give up: both refused, about one round
// in eight with three hosts.)
func TestSSHConcurrentDeploysOneWins(t *testing.T) {
	e := newSSHEnv(t, 3)
	extra := `set("keep_releases", 50)`
	e.deploy(extra, nil)
	const rounds = 20
	for round := range rounds {
		start := make(chan struct{})
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i := range errs {
			wg.Go(func() {
				<-start
				_, errs[i] = e.run(extra, nil, nil, "deploy")
			})
		}
		began := time.Now()
		close(start)
		wg.Wait()
		won := 0
		for _, err := range errs {
			if err == nil {
				won++
				continue
			}
			var fe *FleetError
			if !errors.As(err, &fe) || !fe.Untouched || !strings.Contains(err.Error(), "deploy locked by ") {
				t.Errorf("round %d: the loser was not refused by the lock before changing anything: %v", round+1, err)
			}
		}
		if won != 1 {
			t.Fatalf("round %d: %d deploys won, want exactly 1: %v", round+1, won, errs)
		}
		e.wantNoLock()
		rels := e.releasesOn(0)
		if len(rels) != round+2 {
			t.Fatalf("round %d: %d releases, want %d: %v", round+1, len(rels), round+2, rels)
		}
		e.wantReleases(rels...)
		e.wantCurrent(rels[len(rels)-1])
		t.Logf("round %d: %s", round+1, time.Since(began).Round(time.Millisecond))
	}
}

// A lock left by a run that was killed mid-deploy (kill -9 of a davit
// process, here this test binary running a deploy that hangs after
// deploy:updated): the next deploy is refused with the lock's holder,
// machine, pid and age, and the release it was deploying; deploy:unlock
// removes it; the deploy after that succeeds and cleans the dead run's
// release away.
func TestSSHLockOfAKilledRun(t *testing.T) {
	e := newSSHEnv(t, 3)
	e.deploy("", nil)
	first := e.newestRelease()

	ready := filepath.Join(t.TempDir(), "ready")
	var hosts []string
	for _, s := range e.fleet.Servers {
		hosts = append(hosts, s.Name+"="+s.Host)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperKilledDeploy$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(),
		"DAVIT_KILLED_HELPER=1",
		"DAVIT_KILLED_SSH_CONFIG="+e.fleet.SSHConfigPath,
		"DAVIT_KILLED_HOSTS="+strings.Join(hosts, ","),
		"DAVIT_KILLED_REPO="+e.repoURL,
		"DAVIT_KILLED_READY="+ready)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := os.Stat(ready); err == nil {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("the deploy to kill never got past deploy:updated:\n%s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	pending := e.newestRelease()
	if pending == first {
		t.Fatalf("the killed deploy made no release:\n%s", out.String())
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	pid := strconv.Itoa(cmd.Process.Pid)
	control, _ := os.Hostname()

	_, err := e.run("", nil, nil, "deploy")
	if err == nil {
		t.Fatal("a deploy against the dead run's lock succeeded")
	}
	t.Log(err)
	holder := fmt.Sprintf("deploy locked by %s on %s since ", localUser(), control)
	if n := strings.Count(err.Error(), holder); n != len(e.hostNames) {
		t.Errorf("the refusal names the holder (%q) %d times, want once per host", holder, n)
	}
	for _, name := range e.hostNames {
		if !strings.Contains(err.Error(), name+":") {
			t.Errorf("the refusal does not name %s", name)
		}
	}
	for _, want := range []string{" ago), pid " + pid + ", deploying release " + pending, "`deploy:unlock` removes the lock"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the refusal lacks %q:\n%v", want, err)
		}
	}
	e.wantCurrent(first)

	rec, err := e.run("", nil, nil, "deploy:unlock")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range e.hostNames {
		if want := name + ": info: removed the deploy lock (deploy locked by " + localUser() + " on " + control; !strings.Contains(rec.text(), want) {
			t.Errorf("deploy:unlock does not say %q:\n%s", want, rec.text())
		}
	}
	e.wantNoLock()
	e.deploy("", nil)
	last := e.newestRelease()
	e.wantCurrent(last)
	e.wantReleases(first, last) // the dead run's release was never finished: cleaned up
	e.wantNoLock()
}

// TestHelperKilledDeploy is the davit run TestSSHLockOfAKilledRun kills:
// it runs only as that test's child process, deploys to the parent's
// fleet, and hangs after deploy:updated, holding the lock.
func TestHelperKilledDeploy(t *testing.T) {
	if os.Getenv("DAVIT_KILLED_HELPER") != "1" {
		t.Skip("run by TestSSHLockOfAKilledRun as its child process")
	}
	f := &sshtest.Fleet{SSHConfigPath: os.Getenv("DAVIT_KILLED_SSH_CONFIG")}
	e := &env{t: t, fleet: f, deployTo: isolated + "/app", repoURL: os.Getenv("DAVIT_KILLED_REPO"), props: map[string]string{}}
	for _, h := range strings.Split(os.Getenv("DAVIT_KILLED_HOSTS"), ",") {
		name, addr, _ := strings.Cut(h, "=")
		f.Servers = append(f.Servers, &sshtest.Server{Name: name, Host: addr})
		e.hostNames = append(e.hostNames, name)
	}
	hang := func(*tasks.Context) error {
		if err := os.WriteFile(os.Getenv("DAVIT_KILLED_READY"), nil, 0o644); err != nil {
			return err
		}
		time.Sleep(time.Hour)
		return nil
	}
	_, err := e.run(`after("deploy:updated", "test:hang")`, nil, map[string]func(*tasks.Context) error{"test:hang": hang}, "deploy")
	t.Fatalf("the deploy to kill ended: %v", err)
}
