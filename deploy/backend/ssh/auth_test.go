package ssh

import (
	"context"
	"encoding/pem"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	xssh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"github.com/davit-deploy/davit/deploy/sshtest"
)

// countingAgent counts signatures, to prove the agent did the login.
type countingAgent struct {
	agent.Agent
	signs atomic.Int32
}

func (a *countingAgent) Sign(key xssh.PublicKey, data []byte) (*xssh.Signature, error) {
	a.signs.Add(1)
	return a.Agent.Sign(key, data)
}

// serveAgent serves an in-process keyring holding key on a unix socket.
func serveAgent(t *testing.T, key any) (string, *countingAgent) {
	t.Helper()
	keyring := &countingAgent{Agent: agent.NewKeyring()}
	if err := keyring.Add(agent.AddedKey{PrivateKey: key}); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "agent.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				agent.ServeAgent(keyring, c)
			}()
		}
	}()
	return sock, keyring
}

func TestAgentAuth(t *testing.T) {
	f := sshtest.StartN(t, 1)
	raw, err := xssh.ParseRawPrivateKey([]byte(readFile(t, f.ClientKeyPath)))
	if err != nil {
		t.Fatal(err)
	}
	sock, keyring := serveAgent(t, raw)
	o := testOptions(f)
	o.AgentSocket = sock
	// A key file that does not exist: no identity files at all, and no
	// fallback to ~/.ssh/id_*.
	o.IdentityFiles = []string{filepath.Join(t.TempDir(), "absent")}
	b := connect(t, newDialer(t, o), f.Servers[0].DeployHost())
	if out := output(t, b, "echo agent"); out != "agent" {
		t.Errorf("got %q", out)
	}
	if keyring.signs.Load() != 1 {
		t.Errorf("agent signed %d times", keyring.signs.Load())
	}

	// SSH_AUTH_SOCK is the default socket.
	o.AgentSocket = ""
	d := newDialer(t, o)
	d.getenv = func(k string) string {
		if k == "SSH_AUTH_SOCK" {
			return sock
		}
		return ""
	}
	connect(t, d, f.Servers[0].DeployHost())
	if keyring.signs.Load() != 2 {
		t.Errorf("SSH_AUTH_SOCK agent not used (%d signatures)", keyring.signs.Load())
	}
}

// writeEncryptedKey writes a new passphrase-protected ed25519 key that the
// fleet accepts.
func writeEncryptedKey(t *testing.T, f *sshtest.Fleet, pass string) string {
	t.Helper()
	key, _ := sshtest.GenerateHostKey("ed25519")
	block, err := xssh.MarshalPrivateKeyWithPassphrase(key, "protected", []byte(pass))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "id_protected")
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	signer, _ := xssh.NewSignerFromKey(key)
	if err := f.AuthorizeKey(signer.PublicKey()); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestPassphraseKeyWithoutTerminal(t *testing.T) {
	f := sshtest.StartN(t, 1)
	path := writeEncryptedKey(t, f, "s3cret")
	o := testOptions(f)
	o.IdentityFiles = []string{path}
	d := newDialer(t, o)
	d.ttyPath = filepath.Join(t.TempDir(), "no-tty") // as under CI: no terminal
	_, err := d.Connect(context.Background(), f.Servers[0].DeployHost())
	if err == nil || !errors.Is(err, ErrNoTerminal) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "passphrase") {
		t.Fatalf("got %v", err)
	}
	t.Log(err)

	// With a Passphrase func, the same key logs in, and one answer serves
	// every connection.
	var asked atomic.Int32
	o.Passphrase = func(file string) ([]byte, error) {
		asked.Add(1)
		if file != path {
			t.Errorf("asked for %s", file)
		}
		return []byte("s3cret"), nil
	}
	d = newDialer(t, o)
	for range 2 {
		connect(t, d, f.Servers[0].DeployHost())
	}
	if asked.Load() != 1 {
		t.Errorf("asked %d times", asked.Load())
	}
}

// TestProtectedKeyNotDecryptedUnlessAccepted: a protected key the server
// does not accept is offered by its public half only, so no prompt.
func TestProtectedKeyNotDecryptedUnlessAccepted(t *testing.T) {
	f := sshtest.StartN(t, 1)
	key, _ := sshtest.GenerateHostKey("ed25519")
	block, _ := xssh.MarshalPrivateKeyWithPassphrase(key, "", []byte("x"))
	path := filepath.Join(t.TempDir(), "id_unauthorized")
	os.WriteFile(path, pem.EncodeToMemory(block), 0o600)
	o := testOptions(f)
	o.IdentityFiles = []string{path, f.ClientKeyPath}
	o.Passphrase = func(string) ([]byte, error) {
		t.Error("asked for a passphrase")
		return nil, errors.New("no")
	}
	connect(t, newDialer(t, o), f.Servers[0].DeployHost())
}

func TestAuthFailureNamesKeys(t *testing.T) {
	f := sshtest.StartN(t, 1)
	key, _ := sshtest.GenerateHostKey("ed25519")
	block, _ := xssh.MarshalPrivateKey(key, "")
	path := filepath.Join(t.TempDir(), "id_other")
	os.WriteFile(path, pem.EncodeToMemory(block), 0o600)
	o := testOptions(f)
	o.IdentityFiles = []string{path}
	_, err := newDialer(t, o).Connect(context.Background(), f.Servers[0].DeployHost())
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "authentication as "+f.User+" failed") || !strings.Contains(err.Error(), "host1") {
		t.Fatalf("got %v", err)
	}
}
