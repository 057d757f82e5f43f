package remoterecipe

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/davit-deploy/davit/deploy/sshtest"
)

// TestGitSSH resolves and fetches a recipe over git+ssh:// from a real
// sshd on loopback, the way a private repository is reached: git's own
// ssh (GIT_SSH_COMMAND here, ~/.ssh/config for a user) with the key and
// strict host key checking; nothing of it in the load() name.
func TestGitSSH(t *testing.T) {
	if _, err := exec.LookPath("ssh"); err != nil {
		t.Skip("no ssh client")
	}
	fleet := sshtest.Start(t, sshtest.Options{})
	srv := fleet.Servers[0]
	e := newEnv(t)
	repo, commits := releases(t, filepath.Join(e.dir, "recipes.git"))
	sshCmd := fmt.Sprintf("ssh -F /dev/null -i %s -o IdentitiesOnly=yes -o UserKnownHostsFile=%s -o StrictHostKeyChecking=yes -o BatchMode=yes",
		fleet.ClientKeyPath, fleet.KnownHostsPath)
	name := fmt.Sprintf("git+ssh://%s@%s:%d%s//rails/rails.star@^1.2", srv.User, srv.Host, srv.Port, repo.Dir)
	co, data, err := load(t, e.resolver(Config{Env: []string{"GIT_SSH_COMMAND=" + sshCmd}}), name)
	if err != nil {
		t.Fatal(err)
	}
	if co.Tag != "v1.2.0" || co.Commit != commits["v1.2.0"] || !strings.Contains(data, "v1.2.0") {
		t.Errorf("over ssh: %+v %q", co, data)
	}
	l, _ := ReadLock(e.lock)
	if l.Sources[strings.SplitN(name, "//rails", 2)[0]] == nil {
		t.Errorf("lock sources: %v", l.Sources)
	}

	// A host key that is not the server's is refused: strict checking is
	// git's ssh's, and davit does not turn it off.
	bad := filepath.Join(e.dir, "known_hosts")
	os.WriteFile(bad, nil, 0o600)
	os.Remove(e.lock)
	e.cache = filepath.Join(e.dir, "cache2")
	strict := strings.Replace(sshCmd, fleet.KnownHostsPath, bad, 1)
	_, _, err = load(t, e.resolver(Config{Env: []string{"GIT_SSH_COMMAND=" + strict}}), name)
	if err == nil || !strings.Contains(err.Error(), "list its tags: git ls-remote: No ED25519 host key is known for") || !strings.Contains(err.Error(), "Host key verification failed.") {
		t.Errorf("unknown host key: %v", err)
	}
}
