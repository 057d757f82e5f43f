package ssh

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	xssh "golang.org/x/crypto/ssh"

	"github.com/davit-deploy/davit/deploy/sshtest"
)

func connectErr(t *testing.T, o Options, f *sshtest.Fleet) error {
	t.Helper()
	b, err := newDialer(t, o).Connect(context.Background(), f.Servers[0].DeployHost())
	if err == nil {
		b.Close()
	}
	return err
}

func TestUnknownHostKeyRefused(t *testing.T) {
	f := sshtest.StartN(t, 1)
	s := f.Servers[0]
	empty := filepath.Join(t.TempDir(), "known_hosts")
	writeFile(t, empty, "")
	o := testOptions(f)
	o.KnownHostsFiles = []string{empty}
	err := connectErr(t, o, f)
	var hke *HostKeyError
	if !errors.As(err, &hke) || hke.Changed {
		t.Fatalf("got %v", err)
	}
	msg := err.Error()
	for _, want := range []string{"host1", fmt.Sprintf("[%s]:%d", s.Host, s.Port), "ssh-ed25519", xssh.FingerprintSHA256(s.HostKey), empty} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q: %s", want, msg)
		}
	}
	// A missing file is no file: still refused, and nothing is created.
	o.KnownHostsFiles = []string{filepath.Join(t.TempDir(), "none")}
	if err := connectErr(t, o, f); !errors.As(err, &hke) {
		t.Fatalf("missing known_hosts: %v", err)
	}
}

func TestAcceptNewRecordsKey(t *testing.T) {
	f := sshtest.StartN(t, 1)
	s := f.Servers[0]
	kh := filepath.Join(t.TempDir(), "sub", "known_hosts")
	o := testOptions(f)
	o.KnownHostsFiles = []string{kh}
	o.HostKeyPolicy = HostKeyAcceptNew
	if err := connectErr(t, o, f); err != nil {
		t.Fatal(err)
	}
	got := readFile(t, kh)
	want := fmt.Sprintf("[%s]:%d ssh-ed25519 ", s.Host, s.Port)
	if !strings.HasPrefix(got, want) || strings.Count(got, "\n") != 1 {
		t.Fatalf("known_hosts holds %q, want a line starting %q", got, want)
	}
	// Now the key is known: a strict dialer accepts it, and a second
	// accept-new connection adds nothing.
	o.HostKeyPolicy = HostKeyStrict
	if err := connectErr(t, o, f); err != nil {
		t.Fatal(err)
	}
	o.HostKeyPolicy = HostKeyAcceptNew
	if err := connectErr(t, o, f); err != nil {
		t.Fatal(err)
	}
	if again := readFile(t, kh); again != got {
		t.Errorf("known_hosts changed on a known host:\n%s", again)
	}
}

func TestChangedHostKeyRefused(t *testing.T) {
	f := sshtest.StartN(t, 1)
	s := f.Servers[0]
	other, _ := sshtest.GenerateHostKey("ed25519")
	signer, _ := xssh.NewSignerFromKey(other)
	kh := filepath.Join(t.TempDir(), "known_hosts")
	writeFile(t, kh, fmt.Sprintf("# old key\n[%s]:%d %s", s.Host, s.Port, xssh.MarshalAuthorizedKey(signer.PublicKey())))
	for _, policy := range []HostKeyPolicy{HostKeyStrict, HostKeyAcceptNew} {
		o := testOptions(f)
		o.KnownHostsFiles = []string{kh}
		o.HostKeyPolicy = policy
		err := connectErr(t, o, f)
		var hke *HostKeyError
		if !errors.As(err, &hke) || !hke.Changed {
			t.Fatalf("%s: got %v", policy, err)
		}
		for _, want := range []string{"HOST KEY CHANGED", "host1", kh + ":2", xssh.FingerprintSHA256(s.HostKey), xssh.FingerprintSHA256(signer.PublicKey())} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s: error lacks %q: %v", policy, want, err)
			}
		}
	}
	if got := readFile(t, kh); strings.Count(got, "\n") != 2 {
		t.Errorf("accept-new wrote to known_hosts on a changed key:\n%s", got)
	}
	// Off means off, when asked for explicitly.
	o := testOptions(f)
	o.KnownHostsFiles = []string{kh}
	o.HostKeyPolicy = HostKeyOff
	if err := connectErr(t, o, f); err != nil {
		t.Errorf("policy off: %v", err)
	}
}

// TestHostKeyAlgorithmsFromKnownHosts: the server prefers (for Go's
// client) its RSA key, but known_hosts pins only its ed25519 key; davit must
// ask for ed25519 rather than fail on an "unknown" RSA key.
func TestHostKeyAlgorithmsFromKnownHosts(t *testing.T) {
	f := sshtest.Start(t, sshtest.Options{HostKeyTypes: []string{"rsa", "ed25519"}})
	s := f.Servers[0]
	kh := filepath.Join(t.TempDir(), "known_hosts")
	writeFile(t, kh, s.KnownHostsLines()[1]+"\n")
	o := testOptions(f)
	o.KnownHostsFiles = []string{kh}
	if err := connectErr(t, o, f); err != nil {
		t.Fatal(err)
	}
	// A pinned key type the server does not have is a changed key too.
	ecdsa, _ := sshtest.GenerateHostKey("ecdsa")
	signer, _ := xssh.NewSignerFromKey(ecdsa)
	writeFile(t, kh, fmt.Sprintf("[%s]:%d %s", s.Host, s.Port, xssh.MarshalAuthorizedKey(signer.PublicKey())))
	err := connectErr(t, o, f)
	var hke *HostKeyError
	if !errors.As(err, &hke) || !hke.Changed || !strings.Contains(err.Error(), "ecdsa-sha2-nistp256") || !strings.Contains(err.Error(), kh+":1") {
		t.Fatalf("got %v", err)
	}
}

func TestHashedKnownHostsAndHostKeyAlias(t *testing.T) {
	f := sshtest.StartN(t, 1)
	s := f.Servers[0]
	dir := t.TempDir()
	kh := filepath.Join(dir, "known_hosts")
	cfg := filepath.Join(dir, "config")
	writeFile(t, cfg, fmt.Sprintf("Host %s\n  HashKnownHosts yes\n  HostKeyAlias web-alias\n  StrictHostKeyChecking accept-new\n  UserKnownHostsFile %s\n", s.Name, kh))
	o := testOptions(f)
	o.ConfigFile, o.KnownHostsFiles = cfg, nil
	if err := connectErr(t, o, f); err != nil {
		t.Fatal(err)
	}
	got := readFile(t, kh)
	if !strings.HasPrefix(got, "|1|") || strings.Contains(got, s.Host) {
		t.Fatalf("want a hashed line, got %q", got)
	}
	o.HostKeyPolicy = HostKeyStrict
	if err := connectErr(t, o, f); err != nil {
		t.Fatalf("hashed, aliased entry not found again: %v", err)
	}
}
