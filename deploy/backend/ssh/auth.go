package ssh

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"

	xssh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/term"
)

// ErrNoTerminal is wrapped by the error for a passphrase-protected key when
// there is no terminal to ask for the passphrase and no Passphrase func.
var ErrNoTerminal = errors.New("no terminal to ask for the passphrase")

// identity is one private key file, loaded once per Dialer. A key that
// needs a passphrase is offered by its public half and decrypted only when
// the server accepts that public key, as OpenSSH does, so a key the agent
// already provides, or one the server would refuse, never prompts.
type identity struct {
	path      string
	pub       xssh.PublicKey
	encrypted []byte // PEM of a passphrase-protected key

	once   sync.Once
	signer xssh.Signer
	err    error
}

// identity returns the loaded key file, or nil with a reason to skip it.
func (d *Dialer) identity(path string) (*identity, error) {
	d.mu.Lock()
	id, ok := d.keys[path]
	d.mu.Unlock()
	if ok {
		return id, nil
	}
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	id = &identity{path: path}
	signer, err := xssh.ParsePrivateKey(pem)
	var missing *xssh.PassphraseMissingError
	switch {
	case err == nil:
		id.signer, id.pub = signer, signer.PublicKey()
		id.once.Do(func() {})
	case errors.As(err, &missing):
		id.encrypted, id.pub = pem, missing.PublicKey
		if id.pub == nil {
			// Old PEM formats encrypt everything; the .pub file beside
			// the key says which key it is.
			if b, err := os.ReadFile(path + ".pub"); err == nil {
				id.pub, _, _, _, _ = xssh.ParseAuthorizedKey(b)
			}
		}
	default:
		return nil, fmt.Errorf("identity file %s: %w", path, err)
	}
	d.mu.Lock()
	if prev, ok := d.keys[path]; ok {
		id = prev
	} else {
		d.keys[path] = id
	}
	d.mu.Unlock()
	return id, nil
}

// decrypt asks for the passphrase once; the answer (or failure) is kept for
// every later connection, so a fan-out to fifty hosts prompts once.
func (d *Dialer) decrypt(id *identity) (xssh.Signer, error) {
	id.once.Do(func() {
		d.promptMu.Lock()
		defer d.promptMu.Unlock()
		ask := d.opts.Passphrase
		tries := 1
		if ask == nil {
			ask, tries = d.terminalPassphrase, 3
		}
		for range tries {
			var pass []byte
			pass, id.err = ask(id.path)
			if id.err != nil {
				id.err = fmt.Errorf("identity file %s is passphrase-protected: %w (add it to ssh-agent with `ssh-add %s`, or set Options.Passphrase)", id.path, id.err, id.path)
				return
			}
			id.signer, id.err = xssh.ParsePrivateKeyWithPassphrase(id.encrypted, pass)
			clear(pass)
			if id.err == nil {
				return
			}
			id.err = fmt.Errorf("identity file %s: %w", id.path, id.err)
		}
	})
	return id.signer, id.err
}

// terminalPassphrase prompts on the controlling terminal with echo off.
func (d *Dialer) terminalPassphrase(path string) ([]byte, error) {
	tty, err := os.OpenFile(d.ttyPath, os.O_RDWR, 0)
	if err != nil {
		return nil, ErrNoTerminal
	}
	defer tty.Close()
	if !term.IsTerminal(int(tty.Fd())) {
		return nil, ErrNoTerminal
	}
	fmt.Fprintf(tty, "Enter passphrase for key '%s': ", path)
	pass, err := term.ReadPassword(int(tty.Fd()))
	fmt.Fprintln(tty)
	if err != nil {
		return nil, fmt.Errorf("read passphrase: %w", err)
	}
	return pass, nil
}

// lazySigner offers an encrypted key's public half and decrypts it when the
// server asks for a signature.
type lazySigner struct {
	d  *Dialer
	id *identity
}

func (s *lazySigner) PublicKey() xssh.PublicKey { return s.id.pub }

func (s *lazySigner) Sign(rand io.Reader, data []byte) (*xssh.Signature, error) {
	signer, err := s.d.decrypt(s.id)
	if err != nil {
		return nil, err
	}
	return signer.Sign(rand, data)
}

func (s *lazySigner) SignWithAlgorithm(rand io.Reader, data []byte, algorithm string) (*xssh.Signature, error) {
	signer, err := s.d.decrypt(s.id)
	if err != nil {
		return nil, err
	}
	as, ok := signer.(xssh.AlgorithmSigner)
	if !ok {
		return nil, fmt.Errorf("identity file %s: key cannot sign with %s", s.id.path, algorithm)
	}
	return as.SignWithAlgorithm(rand, data, algorithm)
}

// auth gathers one connection attempt's keys: agent keys first, then
// identity files, in a single publickey method (x/crypto tries each method
// name once, so two publickey methods would never both run).
type auth struct {
	d       *Dialer
	e       *endpoint
	mu      sync.Mutex
	agent   net.Conn
	offered []string
	notes   []string
}

func (a *auth) method() xssh.AuthMethod {
	return xssh.PublicKeysCallback(a.signers)
}

func (a *auth) signers() ([]xssh.Signer, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	type fileKey struct {
		signer xssh.Signer
		path   string
	}
	var files []fileKey
	var fileSigners []xssh.Signer
	for _, p := range a.e.identityFiles {
		id, err := a.d.identity(p)
		if err != nil {
			if !os.IsNotExist(err) {
				a.notes = append(a.notes, err.Error())
			}
			a.d.logf("ssh: skip identity file: %v", err)
			continue
		}
		var s xssh.Signer
		switch {
		case id.signer != nil:
			s = id.signer
		case id.pub != nil:
			s = &lazySigner{a.d, id}
		default:
			// Nothing says which key this is: decrypt now.
			if s, err = a.d.decrypt(id); err != nil {
				a.notes = append(a.notes, err.Error())
				continue
			}
		}
		files = append(files, fileKey{s, p})
		fileSigners = append(fileSigners, s)
	}
	var out []xssh.Signer
	seen := map[string]bool{}
	if a.e.agentSocket != "" {
		conn, err := net.Dial("unix", a.e.agentSocket)
		if err != nil {
			a.notes = append(a.notes, fmt.Sprintf("agent %s: %v", a.e.agentSocket, err))
		} else {
			a.agent = conn
			signers, err := agent.NewClient(conn).Signers()
			if err != nil {
				a.notes = append(a.notes, fmt.Sprintf("agent %s: %v", a.e.agentSocket, err))
			}
			for _, s := range signers {
				// IdentitiesOnly: only agent keys that match a configured file.
				if a.e.identitiesOnly && !hasKey(fileSigners, s.PublicKey()) {
					continue
				}
				seen[string(s.PublicKey().Marshal())] = true
				out = append(out, s)
				a.offered = append(a.offered, "agent "+describeKey(s.PublicKey()))
			}
		}
	}
	for _, f := range files {
		k := string(f.signer.PublicKey().Marshal())
		if seen[k] {
			continue
		}
		seen[k] = true
		out = append(out, f.signer)
		a.offered = append(a.offered, describeKey(f.signer.PublicKey())+" from "+f.path)
	}
	return out, nil
}

func hasKey(signers []xssh.Signer, k xssh.PublicKey) bool {
	for _, s := range signers {
		if bytes.Equal(s.PublicKey().Marshal(), k.Marshal()) {
			return true
		}
	}
	return false
}

func describeKey(k xssh.PublicKey) string {
	return k.Type() + " " + xssh.FingerprintSHA256(k)
}

// close drops the agent connection once the handshake is over.
func (a *auth) close() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.agent != nil {
		a.agent.Close()
		a.agent = nil
	}
}

// explain adds what was offered to an authentication failure, so "unable
// to authenticate" says which keys the server turned down.
func (a *auth) explain(err error) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	msg := err.Error()
	if !strings.Contains(msg, "unable to authenticate") && !strings.Contains(msg, "no supported methods remain") {
		return err
	}
	offered := "no keys (no agent, no identity files)"
	if len(a.offered) > 0 {
		offered = strings.Join(a.offered, ", ")
	}
	extra := ""
	if len(a.notes) > 0 {
		extra = "; " + strings.Join(a.notes, "; ")
	}
	return fmt.Errorf("authentication as %s failed, offered %s%s: %w", a.e.user, offered, extra, err)
}
