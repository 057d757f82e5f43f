package scm

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/davit-deploy/davit/deploy"
	"github.com/davit-deploy/davit/tasks"
)

// svnRepo is a Subversion repository:
//
//	r1: trunk imported (README "one", app/index.html)
//	r2: trunk/README changed to "two"
//	r3: branches/ added (trunk untouched, so trunk's last change is r2)
type svnRepo struct {
	root string // the directory svnserve -r serves
	dir  string // the repository
}

func requireSVN(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"svn", "svnadmin", "svnmucc"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s not installed: %v", tool, err)
			}
			t.Skipf("%s not installed: %v", tool, err)
		}
	}
}

func newSVNRepo(t *testing.T) *svnRepo {
	t.Helper()
	requireSVN(t)
	root := t.TempDir()
	r := &svnRepo{root: root, dir: filepath.Join(root, "repo")}
	run(t, root, "svnadmin", "create", r.dir)
	src := t.TempDir()
	writeFiles(t, src, map[string]string{"README": "one\n", "app/index.html": "<p>svn</p>\n"})
	run(t, root, "svn", "import", "--quiet", "--non-interactive", "-m", "r1", src, r.fileURL("trunk"))
	writeFiles(t, src, map[string]string{"README2": "two\n"})
	run(t, root, "svnmucc", "--non-interactive", "-m", "r2", "put", filepath.Join(src, "README2"), r.fileURL("trunk/README"))
	run(t, root, "svnmucc", "--non-interactive", "-m", "r3", "mkdir", r.fileURL("branches"))
	return r
}

func (r *svnRepo) fileURL(p string) string { return "file://" + r.dir + "/" + p }

func TestSVNResolveRelease(t *testing.T) {
	repo := newSVNRepo(t)
	e := newEnv(t, localHosts("app1"), nil)
	e.set("repo_url", repo.fileURL("trunk"))
	s, _ := New("svn")
	rev, err := s.Resolve(e.ctx())
	if err != nil {
		t.Fatal(err)
	}
	if want := (Revision{ID: "2", Branch: "trunk@r2"}); rev != want {
		t.Errorf("Resolve = %+v, want %+v (trunk's last change, not the repository's r3)", rev, want)
	}
	mustContain(t, "messages", strings.Join(e.rec.messages(), "\n"), "is at r2 (resolved on the control machine)")

	base := t.TempDir()
	release := func(s Strategy, rev Revision, id string) []string {
		t.Helper()
		err := onEach(t, e, base, func(hc *tasks.HostContext, l deploy.Layout) error {
			if err := s.Update(hc, l, rev); err != nil {
				return err
			}
			mkdir(t, l.Release(id))
			return s.Release(hc, l, rev, l.Release(id))
		})
		if err != nil {
			t.Fatal(err)
		}
		return tree(t, filepath.Join(base, "app1", "releases", id))
	}
	want := []string{"README: two\n", "app/", "app/index.html: <p>svn</p>\n"}
	if got := release(s, rev, "1"); !slices.Equal(got, want) {
		t.Errorf("release:\n got %q\nwant %q", got, want)
	}

	// A given revision needs no lookup.
	e.set("revision", "r1")
	s1, _ := New("svn")
	rev1, err := s1.Resolve(e.ctx())
	if err != nil {
		t.Fatal(err)
	}
	if want := (Revision{ID: "1", Branch: "trunk@r1"}); rev1 != want {
		t.Errorf("Resolve with revision=r1 = %+v, want %+v", rev1, want)
	}
	want[0] = "README: one\n"
	if got := release(s1, rev1, "2"); !slices.Equal(got, want) {
		t.Errorf("release of r1:\n got %q\nwant %q", got, want)
	}

	e.set("revision", "HEAD~1")
	s2, _ := New("svn")
	if _, err := s2.Resolve(e.ctx()); err == nil || !strings.Contains(err.Error(), `revision "HEAD~1": want an svn revision number`) {
		t.Errorf("bad revision: %v", err)
	}
}

// startSVNServe serves repo over svn:// on 127.0.0.1 with anonymous access
// off and one user, and returns the trunk URL.
func startSVNServe(t *testing.T, repo *svnRepo, user, password string) string {
	t.Helper()
	conf := "[general]\nanon-access = none\nauth-access = write\npassword-db = passwd\nrealm = davit-test\n"
	writeFiles(t, filepath.Join(repo.dir, "conf"), map[string]string{
		"svnserve.conf": conf,
		"passwd":        "[users]\n" + user + " = " + password + "\n",
	})
	// A free port can be taken by another process before svnserve binds
	// it; try a few.
	for attempt := 0; attempt < 3; attempt++ {
		if url, ok := trySVNServe(t, repo); ok {
			return url
		}
	}
	t.Fatal("svnserve did not start")
	return ""
}

// trySVNServe starts svnserve on a free port and waits until it accepts
// connections; false if it exited first.
func trySVNServe(t *testing.T, repo *svnRepo) (string, bool) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	cmd := exec.Command("svnserve", "-d", "--foreground", "--listen-host", "127.0.0.1", "--listen-port", port, "-r", repo.root)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		select {
		case <-exited:
			t.Logf("svnserve exited: %s", out.String())
			return "", false
		default:
		}
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return fmt.Sprintf("svn://%s/repo/trunk", addr), true
		}
	}
	t.Fatalf("svnserve did not answer on %s: %s", addr, out.String())
	return "", false
}

// The password reaches svn only on stdin: no event and no command line
// holds it, and export works with it against a server that refuses
// anonymous access.
func TestSVNCredentials(t *testing.T) {
	repo := newSVNRepo(t)
	const password = "Tr0ub4dor&3-$HOME'quote\"x"
	url := startSVNServe(t, repo, "alice", password)

	e := newEnv(t, localHosts("app1"), nil)
	e.set("repo_url", url)
	check := func() []string {
		t.Helper()
		s, _ := New("svn")
		return checkProblems(t, e, s)
	}

	// Anonymous access is refused, without a prompt.
	if p := check(); len(p) != 1 || !strings.Contains(p[0], "cannot read repo_url "+url) {
		t.Errorf("anonymous check: %q", p)
	}
	e.set("svn_username", "alice")
	e.set("svn_password", "wrong")
	if p := check(); len(p) != 1 || !strings.Contains(p[0], "cannot read repo_url") {
		t.Errorf("wrong password check: %q", p)
	}

	e.set("svn_password", password)
	if p := check(); len(p) != 0 {
		t.Errorf("check with credentials: %q", p)
	}
	s, _ := New("svn")
	rev, err := s.Resolve(e.ctx())
	if err != nil {
		t.Fatal(err)
	}
	if rev.ID != "2" {
		t.Errorf("Resolve = %+v", rev)
	}
	base := t.TempDir()
	err = onEach(t, e, base, func(hc *tasks.HostContext, l deploy.Layout) error {
		mkdir(t, l.Release("1"))
		return s.Release(hc, l, rev, l.Release("1"))
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := tree(t, filepath.Join(base, "app1", "releases", "1")); !slices.Contains(got, "README: two\n") {
		t.Errorf("release: %q", got)
	}

	// The password is in no event and on no command line that ran (the
	// rendered line is sh -c's argument, or what sshd would receive).
	lines := e.allLines()
	if !slices.ContainsFunc(lines, func(l string) bool {
		return strings.Contains(l, "svn export") && strings.Contains(l, "--username alice --password-from-stdin")
	}) {
		t.Errorf("no svn export with --password-from-stdin among %q", lines)
	}
	for _, l := range lines {
		if strings.Contains(l, password) || strings.Contains(l, "Tr0ub4dor") {
			t.Errorf("command line holds the password: %q", l)
		}
	}
	for _, ev := range e.rec.Events() {
		for _, f := range []string{ev.Command, ev.Line, ev.Error} {
			if strings.Contains(f, "Tr0ub4dor") {
				t.Errorf("event holds the password: %+v", ev)
			}
		}
	}
}
