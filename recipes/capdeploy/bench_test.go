package capdeploy

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/davit-deploy/davit/deploy"
)

// The deploy benchmark puts a real application (about 200 files plus one
// 5 MB file) on 10 and 30 sshd hosts with the deploy recipe and the git
// strategy (a file:// repository every host reads), and times in the same
// run the floor: OpenSSH's ssh running each host's whole deploy as ONE
// shell script over one connection, doing the same work (lock, mirror
// clone or update, release directory, git archive | tar, REVISION and
// REVISION_TIME, shared links, atomic switch, revisions.log, cleanup,
// unlock). On loopback the sshd side (key exchanges, sessions, git, tar)
// burns most of the CPU, so davit is judged against that floor rather
// than an absolute time.
//
//	go test -run XXX -bench Deploy -benchtime 3x ./recipes/capdeploy
//
// Sub-benchmarks: hosts=N/first (an empty deploy_to on every host: the
// mirror is cloned) and hosts=N/repeat (the next commit onto a deployed
// fleet: the mirror is fetched). Metrics, per deploy:
//
//	davit-s           davit's wall time: loading the Deployfile,
//	                  connecting, the whole deploy task
//	floor-s           the one-script-per-host floor, OpenSSH's default kex
//	floor-c25519-s    the same pinned to curve25519-sha256, the kex davit's
//	                  x/crypto client uses: the like-for-like figure
//	davit/floor, davit/floor-c25519   the ratios
//	davit-cpu-s       davit's client CPU (user+sys of this process while
//	                  only davit runs in it)
//	hosts-cpu-s       the CPU the hosts spent on davit's deploy: every
//	                  sshd and everything it ran (hostsCPU), all hosts
//	floor-hosts-cpu-s, floor-c25519-hosts-cpu-s   the same for the floors
//	hosts/floor-cpu, hosts/floor-c25519-cpu       the ratios
//	cmds/host         commands davit ran on each host
//
// The fleet (30 sshd) starts once; hosts=10 uses its first ten servers.
const (
	benchFiles    = 200
	benchBigBytes = 5 << 20
)

func BenchmarkDeploy(b *testing.B) {
	e := newSSHEnv(b, 30)
	e.benchApp()
	for _, n := range []int{10, 30} {
		for _, first := range []bool{true, false} {
			name := fmt.Sprintf("hosts=%d/repeat", n)
			if first {
				name = fmt.Sprintf("hosts=%d/first", n)
			}
			b.Run(name, func(b *testing.B) {
				parent := e.t
				e.t, e.limit = b, n
				defer func() { e.t, e.limit = parent, 0 }()
				benchDeploy(b, e, first)
			})
		}
	}
}

// benchExtra is the Deployfile's own part: linked dirs, as most
// applications have (the floor links the same ones).
const benchExtra = `set("linked_dirs", ["log", "tmp/pids"])`

// benchDeploy runs b.N rounds of davit, the default-kex floor and the
// curve25519 floor, each on its own deploy_to, and reports the averages.
func benchDeploy(b *testing.B, e *env, first bool) {
	floors := []*floor{
		{e: e, deployTo: isolated + "/floor"},
		{e: e, deployTo: isolated + "/floor-c25519", kex: "curve25519-sha256"},
	}
	reset := func() {
		for i := range e.n() {
			dir := e.fleet.Servers[i].IsolatedDir(isolated)
			ents, err := os.ReadDir(dir)
			if err != nil {
				b.Fatal(err)
			}
			for _, ent := range ents {
				if err := os.RemoveAll(filepath.Join(dir, ent.Name())); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	if first {
		reset()
	} else {
		// A deployed fleet: mirrors cloned, one release live.
		e.deploy(benchExtra, nil)
		for _, f := range floors {
			f.run(git(b, e.repo, "rev-parse", "HEAD"))
		}
	}
	var tDavit, tCPU, hDavit time.Duration
	hFloor := make([]time.Duration, len(floors))
	tFloor := make([]time.Duration, len(floors))
	var rec *recorder
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		var sha string
		if first {
			sha = git(b, e.repo, "rev-parse", "HEAD")
		} else {
			sha = e.benchCommit()
		}
		// The three take turns at going first: each deploy leaves ~5 MB
		// per host of dirty pages whose writeback would otherwise always
		// burden the same one.
		for k := range 1 + len(floors) {
			j := (i + k) % (1 + len(floors))
			if first {
				reset()
			}
			syscall.Sync()
			h0 := e.hostsCPU()
			b.StartTimer()
			if j == 0 {
				// davit, alone in this process while it runs.
				cpu0 := cpuTime()
				t0 := time.Now()
				rec = e.deploy(benchExtra, nil)
				tDavit += time.Since(t0)
				tCPU += cpuTime() - cpu0
			} else {
				t0 := time.Now()
				floors[j-1].run(sha)
				tFloor[j-1] += time.Since(t0)
			}
			b.StopTimer()
			if h := e.hostsCPU() - h0; j == 0 {
				hDavit += h
			} else {
				hFloor[j-1] += h
			}
		}
	}
	if first {
		reset()
	}
	b.StopTimer()
	n := float64(b.N)
	s := func(d time.Duration) float64 { return d.Seconds() / n }
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(s(tDavit), "davit-s")
	b.ReportMetric(s(tFloor[0]), "floor-s")
	b.ReportMetric(s(tFloor[1]), "floor-c25519-s")
	b.ReportMetric(float64(tDavit)/float64(tFloor[0]), "davit/floor")
	b.ReportMetric(float64(tDavit)/float64(tFloor[1]), "davit/floor-c25519")
	b.ReportMetric(s(tCPU), "davit-cpu-s")
	b.ReportMetric(s(hDavit), "hosts-cpu-s")
	b.ReportMetric(s(hFloor[0]), "floor-hosts-cpu-s")
	b.ReportMetric(s(hFloor[1]), "floor-c25519-hosts-cpu-s")
	b.ReportMetric(float64(hDavit)/float64(hFloor[0]), "hosts/floor-cpu")
	b.ReportMetric(float64(hDavit)/float64(hFloor[1]), "hosts/floor-c25519-cpu")
	b.ReportMetric(float64(rec.commands()["host1"]), "cmds/host")
}

// cpuTime is this process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		panic(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// hostsCPU is the CPU time the fleet's hosts have spent so far on
// everything their sshd ran (sshtest's Server.CPUTime, host by host).
func (e *env) hostsCPU() time.Duration {
	e.t.Helper()
	var total time.Duration
	for _, s := range e.fleet.Servers[:e.n()] {
		total += s.CPUTime()
	}
	return total
}

// benchApp replaces the repository's content with the benchmark's
// application: benchFiles small text files in a typical tree, and one
// incompressible 5 MB file (a video, a bundled binary). The repository is
// packed, as a hosting service keeps it.
func (e *env) benchApp() {
	e.t.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	dirs := []string{"app/models", "app/controllers", "app/views/users", "app/views/orders", "config", "lib", "lib/tasks", "public/assets", "spec/models", "db/migrate"}
	for i := range benchFiles {
		p := filepath.Join(e.repo, dirs[i%len(dirs)], fmt.Sprintf("file%03d.rb", i))
		var sb strings.Builder
		for l := range 20 + rng.IntN(80) {
			fmt.Fprintf(&sb, "# line %d of file %d: %x\n", l, i, rng.Uint64())
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			e.t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(sb.String()), 0o644); err != nil {
			e.t.Fatal(err)
		}
	}
	big := make([]byte, benchBigBytes)
	for i := 0; i < len(big); i += 8 {
		v := rng.Uint64()
		for k := range 8 {
			big[i+k] = byte(v >> (8 * k))
		}
	}
	if err := os.WriteFile(filepath.Join(e.repo, "public", "intro.mp4"), big, 0o644); err != nil {
		e.t.Fatal(err)
	}
	git(e.t, e.repo, "add", "-A")
	git(e.t, e.repo, "commit", "--quiet", "-m", "the benchmark's application")
	git(e.t, e.repo, "repack", "-a", "-d", "-q")
}

// benchCommit is the next change a repeat deploy ships: one file edited
// (to a value no earlier round wrote, so there is always a change).
func (e *env) benchCommit() string {
	e.t.Helper()
	p := filepath.Join(e.repo, "config", "version.rb")
	if err := os.WriteFile(p, []byte(fmt.Sprintf("VERSION = %d\n", time.Now().UnixNano())), 0o644); err != nil {
		e.t.Fatal(err)
	}
	git(e.t, e.repo, "add", "-A")
	git(e.t, e.repo, "commit", "--quiet", "-m", "the next version")
	return git(e.t, e.repo, "rev-parse", "HEAD")
}

// floor deploys with OpenSSH: one ssh per host, all at once, each running
// the host's whole deploy as one script. Its release ids follow davit's
// rule (never two in one second) so repeated rounds never collide.
type floor struct {
	e        *env
	deployTo string
	kex      string // "" for OpenSSH's default
	last     time.Time
}

func (f *floor) run(sha string) {
	e := f.e
	id := time.Now().UTC().Truncate(time.Second)
	if !id.After(f.last) {
		id = f.last.Add(time.Second)
	}
	f.last = id
	script := floorScript(f.deployTo, deploy.ReleaseID(id), sha, e.repoURL)
	var wg sync.WaitGroup
	errs := make([]error, e.n())
	for i, s := range e.fleet.Servers[:e.n()] {
		args := []string{"-F", e.fleet.SSHConfigPath, "-o", "ControlMaster=no", "-o", "ControlPath=none"}
		if f.kex != "" {
			args = append(args, "-o", "KexAlgorithms="+f.kex)
		}
		wg.Go(func() {
			out, err := exec.Command("ssh", append(args, s.Name, script)...).CombinedOutput()
			if err != nil {
				errs[i] = fmt.Errorf("%s: %v\n%s", s.Name, err, out)
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			e.t.Fatal(err)
		}
	}
}

// floorScript is one host's whole deploy, the work davit's recipe does
// with nothing davit-specific (no marks, no probes, no checks).
func floorScript(deployTo, id, sha, url string) string {
	d := deploy.Quote(deployTo)
	r := deploy.Quote(deployTo + "/releases/" + id)
	return "set -e; " +
		"mkdir -p " + d + "/releases " + d + "/shared/log " + d + "/shared/tmp/pids " + d + "/.davit; " +
		"mkdir " + d + "/.davit/lock; " +
		"if [ -f " + d + "/repo/HEAD ]; then cd " + d + "/repo; git remote set-url origin " + deploy.Quote(url) + "; git remote update --prune >/dev/null; " +
		"else git clone --mirror --quiet " + deploy.Quote(url) + " " + d + "/repo; cd " + d + "/repo; fi; " +
		"mkdir " + r + "; git archive " + sha + " | tar -x -f - -C " + r + "; " +
		"echo " + sha + " > " + r + "/REVISION; git log -1 --format=%ct " + sha + " > " + r + "/REVISION_TIME; " +
		"rm -rf " + r + "/log " + r + "/tmp/pids; mkdir -p " + r + "/tmp; " +
		"ln -s " + d + "/shared/log " + r + "/log; ln -s " + d + "/shared/tmp/pids " + r + "/tmp/pids; " +
		"ln -sfn " + r + " " + d + "/.davit/current.tmp; mv -T " + d + "/.davit/current.tmp " + d + "/current; " +
		"echo 'Branch main (at " + sha + ") deployed as release " + id + " by root' >> " + d + "/revisions.log; " +
		"cd " + d + "/releases; ls -1 | sort | head -n -5 | xargs -r rm -rf --; " +
		"rmdir " + d + "/.davit/lock"
}
