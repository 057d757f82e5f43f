package cli

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/davit-deploy/davit/deploy/sshtest"
)

// examples/webapp, unchanged, deploys to five real sshd servers (its
// production stage's names mapped to 127.0.0.x in an ssh_config), twice,
// from a git repository, and rolls back; only the commands it names for the
// build and the restart are replaced on the command line.
func TestWebappExampleDeploysToSSHServers(t *testing.T) {
	fleet := sshtest.Start(t, sshtest.Options{N: 5, Isolate: []string{"/srv/shop"}})
	names := []string{"web1.example.com", "web2.example.com", "web3.example.com", "jobs1.example.com", "db1.example.com"}
	var cfg strings.Builder
	for i, s := range fleet.Servers {
		fmt.Fprintf(&cfg, "Host %s\n  HostName %s\n  Port %d\n  User %s\n  IdentityFile %s\n  IdentitiesOnly yes\n  UserKnownHostsFile %s\n  StrictHostKeyChecking yes\n\n",
			names[i], s.Host, s.Port, fleet.User, fleet.ClientKeyPath, fleet.KnownHostsPath)
	}
	sshConfig := filepath.Join(t.TempDir(), "ssh_config")
	must(t, os.WriteFile(sshConfig, []byte(cfg.String()), 0o600))

	// The project: the example's Deployfile and the secret files it
	// uploads, which are not in git.
	project := t.TempDir()
	src, err := os.ReadFile("../../../examples/webapp/Deployfile")
	must(t, err)
	must(t, os.WriteFile(filepath.Join(project, "Deployfile"), src, 0o644))
	must(t, os.MkdirAll(filepath.Join(project, "config"), 0o755))
	must(t, os.WriteFile(filepath.Join(project, "config", "database.production.yml"), []byte("production:\n  password: db-secret\n"), 0o600))
	must(t, os.WriteFile(filepath.Join(project, ".env.production"), []byte("SECRET_KEY_BASE=abc\n"), 0o600))

	repo := gitRepo(t, map[string]string{"config.ru": "run App\n", "public/index.html": "shop v1\n"})

	var up atomic.Int32
	health := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/up" {
			up.Add(1)
			fmt.Fprintln(w, "<html><body style=\"background-color: green\"></body></html>")
			return
		}
		http.NotFound(w, r)
	}))
	defer health.Close()

	df := filepath.Join(project, "Deployfile")
	davit := func(args ...string) string {
		t.Helper()
		base := []string{"-f", df, "--format", "plain", "--ssh-config", sshConfig, "production"}
		code, out := runDavit(t, append(append(base, args...),
			"repo_url=file://"+repo, "bundle=true", "restart_command=echo restarted",
			"health_check_url="+health.URL+"/up")...)
		if code != 0 {
			t.Fatalf("davit %s: exit %d\n%s", strings.Join(args, " "), code, out)
		}
		return out
	}
	davit("deploy:setup")
	out := davit("deploy")
	if !strings.Contains(out, "publishing batch 1 of 2") || !strings.Contains(out, "restarted") {
		t.Errorf("the deploy did not publish in two batches with its restart hook:\n%s", out)
	}
	first := currentRelease(t, fleet.Servers[0].IsolatedDir("/srv/shop"))
	commitFile(t, repo, "public/index.html", "shop v2\n")
	davit("deploy")
	for i, s := range fleet.Servers {
		dir := s.IsolatedDir("/srv/shop")
		// current is an absolute link, as the server sees the path.
		release := filepath.Join(dir, "releases", currentRelease(t, dir))
		body, err := os.ReadFile(filepath.Join(release, "public", "index.html"))
		if err != nil || string(body) != "shop v2\n" {
			t.Errorf("%s: current serves %q (%v); want v2", names[i], body, err)
		}
		// The linked files are the uploaded ones, private to the user.
		fi, err := os.Stat(filepath.Join(dir, "shared", "config", "database.yml"))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: shared/config/database.yml: %v %v", names[i], fi, err)
		}
		if target, err := os.Readlink(filepath.Join(release, ".env")); err != nil || !strings.HasSuffix(target, "shared/.env") {
			t.Errorf("%s: current/.env -> %q (%v)", names[i], target, err)
		}
	}
	if n := up.Load(); n < 3 {
		t.Errorf("the health check asked %d times; want at least once per web server and deploy", n)
	}
	davit("rollback")
	for i, s := range fleet.Servers {
		if got := currentRelease(t, s.IsolatedDir("/srv/shop")); got != first {
			t.Errorf("%s: rolled back to %s; want %s", names[i], got, first)
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// gitRepo makes a git repository with one commit of files on main.
func gitRepo(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	git(t, dir, "init", "-q", "-b", "main")
	for name, body := range files {
		must(t, os.MkdirAll(filepath.Join(dir, filepath.Dir(name)), 0o755))
		must(t, os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644))
	}
	git(t, dir, "add", "-A")
	git(t, dir, "commit", "-q", "-m", "first")
	return dir
}

func commitFile(t *testing.T, repo, name, body string) {
	t.Helper()
	must(t, os.WriteFile(filepath.Join(repo, name), []byte(body), 0o644))
	git(t, repo, "commit", "-q", "-am", "change "+name)
}

func git(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// currentRelease is the release id current points at in deploy_to dir.
func currentRelease(t *testing.T, dir string) string {
	t.Helper()
	target, err := os.Readlink(filepath.Join(dir, "current"))
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Base(target)
}
