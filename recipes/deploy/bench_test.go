package deploy

import (
	"fmt"
	"os/exec"
	"sync"
	"testing"

	"davit/deploy"
)

// BenchmarkDeploy30 deploys a git repository to 30 sshd hosts with the
// deploy recipe, next to the floor a shell script with OpenSSH reaches
// doing the same work (one ssh per host: update the mirror, archive the
// commit into a new release, REVISION, atomic switch), both warm (the
// mirrors exist).
//
//	go test -run XXX -bench Deploy30 -benchtime 3x ./recipes/deploy
func BenchmarkDeploy30(b *testing.B) {
	e := newSSHEnv(b, 30)
	b.Run("davit", func(b *testing.B) {
		e.deploy("", nil) // warm: mirrors cloned
		b.ResetTimer()
		for range b.N {
			e.deploy("", nil)
		}
		b.StopTimer()
		rec := e.deploy("", nil)
		b.ReportMetric(float64(rec.commands()["host1"]), "cmds/host")
	})
	for _, kex := range []string{"", "curve25519-sha256"} {
		name := "openssh-script"
		if kex != "" {
			name += "-" + kex
		}
		b.Run(name, func(b *testing.B) { benchScript(b, e, kex) })
	}
}

// benchScript is the OpenSSH shell-script floor; kex pins the key
// exchange (OpenSSH's default post-quantum one costs most of its time).
func benchScript(b *testing.B, e *env, kex string) {
	{
		sha := git(b, e.repo, "rev-parse", "HEAD")
		script := func(id string) string {
			d := isolated + "/app2"
			r := d + "/releases/" + id
			return "set -e; mkdir -p " + d + "/releases " + d + "/shared; " +
				"if [ -f " + d + "/repo/HEAD ]; then cd " + d + "/repo && git remote update --prune >/dev/null 2>&1; else git clone --mirror -q " + deploy.Quote(e.repoURL) + " " + d + "/repo; fi; " +
				"mkdir " + r + " && cd " + d + "/repo && git archive " + sha + " | tar -x -f - -C " + r + " && echo " + sha + " > " + r + "/REVISION; " +
				"ln -sfn " + r + " " + d + "/current.tmp && mv -T " + d + "/current.tmp " + d + "/current"
		}
		run := func(id string) {
			var wg sync.WaitGroup
			errs := make([]error, len(e.fleet.Servers))
			for i, s := range e.fleet.Servers {
				wg.Go(func() {
					args := []string{"-F", e.fleet.SSHConfigPath}
					if kex != "" {
						args = append(args, "-o", "KexAlgorithms="+kex)
					}
					out, err := exec.Command("ssh", append(args, s.Name, script(id))...).CombinedOutput()
					if err != nil {
						errs[i] = fmt.Errorf("%s: %v\n%s", s.Name, err, out)
					}
				})
			}
			wg.Wait()
			for _, err := range errs {
				if err != nil {
					b.Fatal(err)
				}
			}
		}
		run("20000101000000")
		b.ResetTimer()
		for i := range b.N {
			run(fmt.Sprintf("20000102%02d%04d", len(kex)%100, i))
		}
	}
}
