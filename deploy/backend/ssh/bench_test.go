package ssh

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	xssh "golang.org/x/crypto/ssh"

	"github.com/davit-deploy/davit/deploy"
	"github.com/davit-deploy/davit/deploy/runner"
	"github.com/davit-deploy/davit/deploy/sshtest"
)

// The benchmarks compare davit with the two things it should be as fast as:
// a bare x/crypto/ssh client (the floor for Go) and OpenSSH's ssh (what
// Capistrano-style tools run). Each reports per-command or per-fan-out
// times for all of them and the ratios, with b.ReportMetric. Every server
// is a real sshd on loopback, started once per benchmark.

const seqCommands = 200

// BenchmarkSequentialCommands runs 200 trivial commands one after another
// on one host: davit's per-command overhead on a warm connection.
func BenchmarkSequentialCommands(b *testing.B) {
	f := sshtest.StartN(b, 1)
	s := f.Servers[0]
	b.Run("true", func(b *testing.B) {
		d := newDialer(b, testOptions(f))
		be := connect(b, d, s.DeployHost())
		cmd := &deploy.Command{Args: []string{"true"}}
		ctx := context.Background()

		bare, err := xssh.Dial("tcp", s.Addr, &xssh.ClientConfig{
			User:            s.User,
			Auth:            []xssh.AuthMethod{xssh.PublicKeys(f.ClientSigner)},
			HostKeyCallback: xssh.FixedHostKey(s.HostKey),
		})
		if err != nil {
			b.Fatal(err)
		}
		defer bare.Close()

		mux := newOpenSSHMux(b, f, s)

		// Warm up all three.
		for range 5 {
			if _, err := be.Run(ctx, cmd, nil, nil); err != nil {
				b.Fatal(err)
			}
			bareRun(b, bare)
		}
		var tDavit, tBare, tSSH time.Duration
		b.ResetTimer()
		for range b.N {
			t0 := time.Now()
			for range seqCommands {
				if res, err := be.Run(ctx, cmd, nil, nil); err != nil || res.ExitStatus != 0 {
					b.Fatal(res, err)
				}
			}
			tDavit += time.Since(t0)

			b.StopTimer()
			t0 = time.Now()
			for range seqCommands {
				bareRun(b, bare)
			}
			tBare += time.Since(t0)
			if mux != nil {
				t0 = time.Now()
				for range seqCommands {
					mux.run(b)
				}
				tSSH += time.Since(t0)
			}
			b.StartTimer()
		}
		n := float64(b.N * seqCommands)
		ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) / n }
		b.ReportMetric(0, "ns/op")
		b.ReportMetric(ms(tDavit), "davit-ms/cmd")
		b.ReportMetric(ms(tBare), "bare-ms/cmd")
		b.ReportMetric(float64(tDavit)/float64(tBare), "davit/bare")
		if mux != nil {
			b.ReportMetric(ms(tSSH), "openssh-mux-ms/cmd")
			b.ReportMetric(float64(tDavit)/float64(tSSH), "davit/openssh-mux")
		}
	})
}

// bareRun is the floor: a new session per command on one x/crypto client.
func bareRun(b *testing.B, c *xssh.Client) {
	sess, err := c.NewSession()
	if err != nil {
		b.Fatal(err)
	}
	if err := sess.Run("true"); err != nil {
		b.Fatal(err)
	}
	sess.Close()
}

// openSSHMux runs commands with OpenSSH's ssh through a ControlMaster
// connection, so each command costs a process and a mux round trip but no
// handshake.
type openSSHMux struct {
	args []string
}

func newOpenSSHMux(b *testing.B, f *sshtest.Fleet, s *sshtest.Server) *openSSHMux {
	sshBin, err := exec.LookPath("ssh")
	if err != nil {
		b.Log("no ssh client: OpenSSH comparison skipped")
		return nil
	}
	// Unix socket paths are short: keep the control socket out of the
	// long benchmark temp dir.
	dir, err := os.MkdirTemp("", "cm")
	if err != nil {
		b.Fatal(err)
	}
	ctl := filepath.Join(dir, "%C")
	m := &openSSHMux{args: []string{sshBin, "-F", f.SSHConfigPath, "-o", "ControlPath=" + ctl, s.Name}}
	b.Cleanup(func() {
		exec.Command(sshBin, "-F", f.SSHConfigPath, "-o", "ControlPath="+ctl, "-O", "exit", s.Name).Run()
		os.RemoveAll(dir)
	})
	// The warm-up connection becomes the master and stays.
	warm := exec.Command(sshBin, "-F", f.SSHConfigPath, "-o", "ControlMaster=auto", "-o", "ControlPersist=120", "-o", "ControlPath="+ctl, s.Name, "true")
	if out, err := warm.CombinedOutput(); err != nil {
		b.Fatalf("ssh master: %v: %s", err, out)
	}
	m.run(b)
	return m
}

func (m *openSSHMux) run(b *testing.B) {
	cmd := exec.Command(m.args[0], append(m.args[1:], "true")...)
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("ssh: %v: %s", err, out)
	}
}

const fanoutHosts = 30

// BenchmarkFanout runs one command on 30 hosts with fresh connections each
// time (TCP, key exchange, authentication, session): davit's Dialer, Pool
// and runner.Parallel against 30 OpenSSH ssh processes started at once.
func BenchmarkFanout(b *testing.B) {
	f := sshtest.StartN(b, fanoutHosts)
	b.Run("30hosts", func(b *testing.B) {
		sshBin, sshErr := exec.LookPath("ssh")
		hosts := f.Hosts()
		davit := func() {
			d := newDialer(b, testOptions(f))
			pool := deploy.NewPool(d.Connect)
			defer pool.Close()
			err := runner.Parallel{}.Run(context.Background(), hosts, func(ctx context.Context, h *deploy.Host) error {
				be, err := pool.Get(ctx, h)
				if err != nil {
					return err
				}
				_, err = be.Run(ctx, &deploy.Command{Args: []string{"true"}}, nil, nil)
				return err
			})
			if err != nil {
				b.Fatal(err)
			}
		}
		// OpenSSH 9.x defaults to the post-quantum sntrup761x25519 key
		// exchange, which x/crypto lacks and which costs both ends more
		// CPU than curve25519; kex pins it for a like-for-like figure.
		openssh := func(kex ...string) {
			var wg sync.WaitGroup
			errs := make([]error, len(f.Servers))
			for i, s := range f.Servers {
				args := []string{"-F", f.SSHConfigPath, "-o", "ControlMaster=no", "-o", "ControlPath=none"}
				for _, k := range kex {
					args = append(args, "-o", "KexAlgorithms="+k)
				}
				cmd := exec.Command(sshBin, append(args, s.Name, "true")...)
				if err := cmd.Start(); err != nil {
					b.Fatal(err)
				}
				wg.Go(func() { errs[i] = cmd.Wait() })
			}
			wg.Wait()
			for _, err := range errs {
				if err != nil {
					b.Fatal(err)
				}
			}
		}
		davit()
		if sshErr == nil {
			openssh()
		}
		var tDavit, tSSH, tSSH25519 time.Duration
		b.ResetTimer()
		for range b.N {
			t0 := time.Now()
			davit()
			tDavit += time.Since(t0)
			if sshErr == nil {
				b.StopTimer()
				t0 = time.Now()
				openssh()
				tSSH += time.Since(t0)
				t0 = time.Now()
				openssh("curve25519-sha256")
				tSSH25519 += time.Since(t0)
				b.StartTimer()
			}
		}
		n := float64(b.N)
		ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) / n }
		b.ReportMetric(0, "ns/op")
		b.ReportMetric(ms(tDavit), "davit-ms/fanout")
		if sshErr == nil {
			b.ReportMetric(ms(tSSH), "openssh-ms/fanout")
			b.ReportMetric(float64(tDavit)/float64(tSSH), "davit/openssh")
			b.ReportMetric(ms(tSSH25519), "openssh-c25519-ms/fanout")
			b.ReportMetric(float64(tDavit)/float64(tSSH25519), "davit/openssh-c25519")
		}
	})
}
