package scm

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/davit-deploy/davit/deploy"
	"github.com/davit-deploy/davit/deploy/backend/ssh"
	"github.com/davit-deploy/davit/deploy/sshtest"
	"github.com/davit-deploy/davit/tasks"
)

// The strategies on real sshd hosts. Every host sees its own private tree
// at scmTestRoot (a mount namespace per sshd), as separate servers would,
// so a repository placed there is reachable from that host and not from
// the control machine. The tests run as root (CI does): git's
// safe.directory check then never refuses the test repositories, which
// belong to the same user.
const scmTestRoot = "/srv/davit-scm-test"

func TestStrategiesOverSSH(t *testing.T) {
	fleet := sshtest.Start(t, sshtest.Options{N: 2, Isolate: []string{scmTestRoot}})
	dialer, err := ssh.NewDialer(ssh.Options{
		ConfigFile:      "none",
		KnownHostsFiles: []string{fleet.KnownHostsPath},
		IdentityFiles:   []string{fleet.ClientKeyPath},
		AgentSocket:     "none",
		ConnectTimeout:  10 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	hosts := fleet.Hosts()
	for i, h := range hosts {
		h.Roles = []string{"app"}
		h.Primary = i == 0
	}
	layout := deploy.Layout{DeployTo: scmTestRoot + "/app"}
	// onDir is where the test process sees a path of server i.
	onDir := func(i int, p string) string {
		rel := strings.TrimPrefix(p, scmTestRoot)
		return filepath.Join(fleet.Servers[i].IsolatedDir(scmTestRoot), rel)
	}
	release := func(t *testing.T, e *env, s Strategy, rev Revision, id string) {
		t.Helper()
		c := e.ctx()
		err := c.On(c.Roles("all"), nil, func(hc *tasks.HostContext) error {
			if err := s.Update(hc, layout, rev); err != nil {
				return err
			}
			if err := hc.Execute([]string{"mkdir", "-p", layout.Release(id)}, tasks.CommandOptions{}); err != nil {
				return err
			}
			return s.Release(hc, layout, rev, layout.Release(id))
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	repo := newTestRepo(t)

	t.Run("git", func(t *testing.T) {
		e := newEnv(t, hosts, dialer.Connect)
		e.set("repo_url", repo.url)
		e.set("version", "^1.4")
		s, _ := New("git")
		rev, err := s.Resolve(e.ctx())
		if err != nil {
			t.Fatal(err)
		}
		if rev.ID != repo.shas["c3"] || rev.Branch != "v1.4.2" {
			t.Errorf("Resolve = %+v", rev)
		}
		release(t, e, s, rev, "20260101000000")
		want := archiveTree(t, repo.dir, rev.ID, "")
		for i := range hosts {
			if got := tree(t, onDir(i, layout.Release("20260101000000"))); !slices.Equal(got, want) {
				t.Errorf("host%d release:\n got %q\nwant %q", i+1, got, want)
			}
			run(t, onDir(i, layout.Repo()), "git", "cat-file", "-e", rev.ID)
		}
	})

	t.Run("git resolves on the primary host", func(t *testing.T) {
		// The repository exists only on the servers.
		for i := range hosts {
			run(t, repo.dir, "git", "clone", "--quiet", "--bare", repo.dir, onDir(i, scmTestRoot+"/origin.git"))
		}
		url := "file://" + scmTestRoot + "/origin.git"
		e := newEnv(t, hosts, dialer.Connect)
		e.set("repo_url", url)
		e.set("tag", "v1.4.0")
		s, _ := New("git")
		rev, err := s.Resolve(e.ctx())
		if err != nil {
			t.Fatal(err)
		}
		if rev.ID != repo.shas["c2"] {
			t.Errorf("Resolve = %+v, want commit %s", rev, repo.shas["c2"])
		}
		msgs := strings.Join(e.rec.messages(), "\n")
		t.Logf("messages:\n%s", msgs)
		mustContain(t, "messages", msgs,
			"warn: git: the control machine cannot query "+url,
			"does not appear to be a git repository",
			"resolved on host "+hosts[0].String())
		// Only the primary was asked.
		if b := e.host(hosts[1].Name); b != nil {
			t.Errorf("host2 was connected to during Resolve: %q", b.lines)
		}
		release(t, e, s, rev, "20260102000000")
		for i := range hosts {
			if got := tree(t, onDir(i, layout.Release("20260102000000"))); !slices.Contains(got, "README: v1.4.0\n") {
				t.Errorf("host%d release: %q", i+1, got)
			}
		}
	})

	t.Run("copy", func(t *testing.T) {
		e := newEnv(t, hosts, dialer.Connect)
		writeFiles(t, filepath.Join(e.project, "build"), map[string]string{"index.html": "built\n", "assets/app.js": "js\n"})
		e.set("copy_dir", "build")
		s, _ := New("copy")
		defer s.Close()
		rev, err := s.Resolve(e.ctx())
		if err != nil {
			t.Fatal(err)
		}
		release(t, e, s, rev, "20260103000000")
		want := tree(t, filepath.Join(e.project, "build"))
		for i, h := range hosts {
			if got := tree(t, onDir(i, layout.Release("20260103000000"))); !slices.Equal(got, want) {
				t.Errorf("%s release:\n got %q\nwant %q", h.Name, got, want)
			}
			if _, uploads := e.host(h.Name).recorded(); len(uploads) != 1 {
				t.Errorf("%s: uploads %q, want one", h.Name, uploads)
			}
			if left, _ := filepath.Glob(onDir(i, layout.State()+"/upload-*")); len(left) != 0 {
				t.Errorf("%s: upload left behind: %q", h.Name, left)
			}
		}
	})
}
