package cli

import (
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/davit-deploy/davit/recipes/boot"
	"github.com/davit-deploy/davit/recipes/boot/imdstest"
)

const bootUser = "davit-boot-test"

// imageHosts is the hosts file of the image, before the boot.
const imageHosts = "127.0.0.1\tlocalhost\n10.9.9.9\tdbhost\n::1\tip6-localhost\n"

// bootFixture is one instance's disk: an svn repository with the payroll
// application, an empty deploy directory owned by the application user, a
// hosts file, and stand-ins for bundle, mongrel_rails and
// script/delayed_job that record how they were called.
type bootFixture struct {
	t        *testing.T
	dir      string
	deployTo string
	hosts    string
	calls    string
	log      string
	user     *user.User
	vars     []string
}

func newBootFixture(t *testing.T) *bootFixture {
	t.Helper()
	u := bootAppUser(t)
	// Below a directory every user can traverse: the application user
	// reads the repository and runs the stand-ins.
	dir, err := os.MkdirTemp("", "davit-boot-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	f := &bootFixture{t: t, dir: dir, user: u, deployTo: filepath.Join(dir, "home"), hosts: filepath.Join(dir, "hosts"),
		calls: filepath.Join(dir, "calls"), log: filepath.Join(dir, "davit.log")}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	for _, d := range []string{f.deployTo, f.calls} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(d, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(f.hosts, []byte(imageHosts), 0o644); err != nil {
		t.Fatal(err)
	}
	// The application in Subversion.
	src := filepath.Join(dir, "src")
	for path, content := range map[string]string{
		"config/mongrel_cluster.yml":            "port: 8000\nservers: 3\n",
		"app/controllers/welcome_controller.rb": "class WelcomeController < ApplicationController; end\n",
		"public/robots.txt":                     "User-agent: *\n",
	} {
		p := filepath.Join(src, path)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte(content), 0o644)
	}
	repo := filepath.Join(dir, "svn")
	f.run("svnadmin", "create", repo)
	f.run("svn", "import", "-q", "-m", "SmallPayroll", src, "file://"+repo+"/trunk")
	f.run("chmod", "-R", "a+rX", repo)
	bin := filepath.Join(dir, "bin")
	os.Mkdir(bin, 0o755)
	for _, name := range []string{"bundle", "mongrel_rails", "delayed_job"} {
		script := "#!/bin/sh\necho \"$(id -un) $PWD RAILS_ENV=$RAILS_ENV $*\" >> " + filepath.Join(f.calls, name) + "\n"
		if err := os.WriteFile(filepath.Join(bin, name), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	f.vars = []string{
		"repo_url=file://" + repo + "/trunk", "deploy_to=" + f.deployTo, "self_deploy_user=" + bootUser,
		"bundle=" + filepath.Join(bin, "bundle"), "mongrel_rails=" + filepath.Join(bin, "mongrel_rails"),
		"delayed_job_command=" + filepath.Join(bin, "delayed_job"),
	}
	// No EC2 or S3 API answers: a boot that asked ec2_servers for the
	// fleet, or ran assets:sync, would fail.
	closed := closedPort(t)
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID": "AKIDTEST", "AWS_SECRET_ACCESS_KEY": "test-secret", "AWS_REGION": "us-east-1",
		"AWS_ENDPOINT_URL": closed, "AWS_ENDPOINT_URL_EC2": "", "AWS_ENDPOINT_URL_S3": "", "AWS_PROFILE": "",
		"AWS_CONFIG_FILE": filepath.Join(dir, "aws-config"), "AWS_SHARED_CREDENTIALS_FILE": filepath.Join(dir, "aws-credentials"),
		"PAYROLL_SVN_PASSWORD": "boot-svn-secret", "AWS_EC2_METADATA_DISABLED": "",
	} {
		t.Setenv(k, v)
	}
	return f
}

func (f *bootFixture) run(name string, args ...string) {
	f.t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		f.t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// selfDeploy runs `davit self-deploy` of examples/payroll with the
// fixture's variables.
func (f *bootFixture) selfDeploy(args ...string) (int, string) {
	f.t.Helper()
	all := []string{"-f", "../../../examples/payroll/Deployfile", "--format", "plain", "--log", f.log,
		"self-deploy", "--hosts-file", f.hosts}
	all = append(all, args...)
	return runDavit(f.t, append(all, f.vars...)...)
}

// startMock starts the metadata mock as an instance of type typ with
// userData, and points the SDK at it.
func (f *bootFixture) startMock(typ, userData string) {
	m := imdstest.Start(f.t, imdstest.Config{InstanceID: "i-0feed" + strings.ReplaceAll(typ, ".", ""), InstanceType: typ,
		AZ: "us-east-1a", Region: "us-east-1", LocalIPv4: "10.0.1.17", UserData: userData})
	f.t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", m.URL)
}

func (f *bootFixture) callsOf(name string) string {
	b, _ := os.ReadFile(filepath.Join(f.calls, name))
	return string(b)
}

// bootAppUser is the unprivileged application user, created when missing
// (the tests run as root, which sudo -n -u needs).
func bootAppUser(t *testing.T) *user.User {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("the self-deploy tests run as root: they deploy as another user through sudo -n -u")
	}
	if u, err := user.Lookup(bootUser); err == nil {
		return u
	}
	home := filepath.Join(os.TempDir(), bootUser+"-home")
	out, err := exec.Command("useradd", "-d", home, "-m", "-s", "/bin/sh", bootUser).CombinedOutput()
	u, lerr := user.Lookup(bootUser)
	if lerr != nil {
		// Not made here nor by a test running at the same time.
		t.Fatalf("useradd %s: %v: %s", bootUser, err, out)
	}
	return u
}

func closedPort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return "http://" + l.Addr().String()
}

// An app server boots: metadata and user data from the mock, dbhost in the
// hosts file, the release deployed as the application user, the mongrel
// cluster started; no health check, no assets:sync, no restart.
func TestSelfDeployApp(t *testing.T) {
	f := newBootFixture(t)
	f.startMock("m1.small", "DB=10.0.0.5;ROLE=app;STAGE=production;REVISION=1")
	code, out := f.selfDeploy()
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, out)
	}
	hosts, _ := os.ReadFile(f.hosts)
	if want := "10.0.0.5\tdbhost\t" + boot.HostsMarker + "\n" + imageHosts; string(hosts) != want {
		t.Errorf("hosts file:\n%s\nwant:\n%s", hosts, want)
	}
	release := f.checkRelease("1")
	current := filepath.Join(f.deployTo, "current")
	if got, want := f.callsOf("mongrel_rails"), bootUser+" "+current+" RAILS_ENV= cluster::start -C "+current+"/config/mongrel_cluster.yml\n"; got != want {
		t.Errorf("mongrel_rails calls:\n%s\nwant:\n%s", got, want)
	}
	if got, want := f.callsOf("bundle"), bootUser+" "+release+" RAILS_ENV=production install --jobs 4 --quiet\n"; got != want {
		t.Errorf("bundle calls:\n%s\nwant:\n%s", got, want)
	}
	if got := f.callsOf("delayed_job"); got != "" {
		t.Errorf("an app server ran delayed_job: %s", got)
	}
	for _, want := range []string{
		"self-deploy: reading instance metadata from http://127.0.0.1:",
		"self-deploy: user data: db, revision, role, stage",
		"self-deploy: stage production, role app, instance i-0feedm1small m1.small us-east-1a 10.0.1.17",
		"self-deploy: hosts file " + f.hosts + ": dbhost → 10.0.0.5 (written)",
		"self-deploy: deploying on this machine as " + bootUser + ": deploy:setup, deploy, start:app",
		"self-deploy: skipped deploy:health_check at boot",
		"self-deploy: skipped mongrel:restart at boot",
		"self-deploy: skipped assets:sync at boot",
		"self-deploy: done: i-0feedm1small is deployed and started as role app",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "boot-svn-secret") {
		t.Errorf("the password was shown:\n%s", out)
	}
	if log, _ := os.ReadFile(f.log); strings.Contains(string(log), "boot-svn-secret") || !strings.Contains(string(log), "svn") {
		t.Errorf("the run log shows the password or no svn command:\n%s", log)
	}

	// A second boot of the same machine: the hosts file is already right.
	code, out = f.selfDeploy()
	if code != 0 {
		t.Fatalf("second boot: exit %d\n%s", code, out)
	}
	if !strings.Contains(out, "dbhost → 10.0.0.5 (already up to date)") {
		t.Errorf("second boot:\n%s", out)
	}
	if again, _ := os.ReadFile(f.hosts); string(again) != string(hosts) {
		t.Errorf("the second boot changed the hosts file:\n%s", again)
	}
}

// checkRelease checks the layout: one release of revision rev, current
// pointing at it, everything owned by the application user. It returns
// the release's path.
func (f *bootFixture) checkRelease(rev string) string {
	t := f.t
	t.Helper()
	releases, err := os.ReadDir(filepath.Join(f.deployTo, "releases"))
	if err != nil || len(releases) == 0 {
		t.Fatalf("releases: %v %v", releases, err)
	}
	release := filepath.Join(f.deployTo, "releases", releases[len(releases)-1].Name())
	if target, err := os.Readlink(filepath.Join(f.deployTo, "current")); err != nil || filepath.Join(f.deployTo, target) != release && target != release {
		t.Errorf("current -> %q (%v), want %s", target, err, release)
	}
	if b, err := os.ReadFile(filepath.Join(release, "REVISION")); err != nil || strings.TrimSpace(string(b)) != rev {
		t.Errorf("REVISION %q (%v), want %s", b, err, rev)
	}
	for _, p := range []string{"config/mongrel_cluster.yml", "public/robots.txt", "REVISION"} {
		if _, err := os.Stat(filepath.Join(release, p)); err != nil {
			t.Errorf("the release lacks %s: %v", p, err)
		}
	}
	for _, p := range []string{release, filepath.Join(release, "config/mongrel_cluster.yml"), filepath.Join(f.deployTo, "shared"),
		filepath.Join(f.deployTo, "revisions.log"), filepath.Join(f.deployTo, "current")} {
		info, err := os.Lstat(p)
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		if uid := strconv.Itoa(int(info.Sys().(*syscall.Stat_t).Uid)); uid != f.user.Uid {
			t.Errorf("%s is owned by uid %s, want %s (%s)", p, uid, f.user.Uid, bootUser)
		}
	}
	return release
}

// Job servers start as many delayed_job workers as their type is worth:
// the original's 2 per compute unit for m1.small and m1.large, 2 per
// vCPU for c5.large.
func TestSelfDeployJobWorkers(t *testing.T) {
	for typ, workers := range map[string]string{"m1.small": "2", "m1.large": "8", "c5.large": "4"} {
		t.Run(typ, func(t *testing.T) {
			f := newBootFixture(t)
			f.startMock(typ, `{"DB": "10.0.0.6", "ROLE": "job", "STAGE": "production"}`)
			code, out := f.selfDeploy()
			if code != 0 {
				t.Fatalf("exit %d\n%s", code, out)
			}
			current := filepath.Join(f.deployTo, "current")
			if got, want := f.callsOf("delayed_job"), bootUser+" "+current+" RAILS_ENV=production -n "+workers+" start\n"; got != want {
				t.Errorf("delayed_job calls:\n%s\nwant:\n%s", got, want)
			}
			if !strings.Contains(out, workers+" delayed_job workers ("+typ+")") {
				t.Errorf("the output does not say how many workers:\n%s", out)
			}
			if got := f.callsOf("mongrel_rails"); got != "" {
				t.Errorf("a job server ran mongrel: %s", got)
			}
			if !strings.Contains(out, "self-deploy: skipped delayed_job:restart at boot") {
				t.Errorf("delayed_job:restart was not skipped:\n%s", out)
			}
			f.checkRelease(f.lastRevision())
			if hosts, _ := os.ReadFile(f.hosts); !strings.HasPrefix(string(hosts), "10.0.0.6\tdbhost\t") {
				t.Errorf("hosts file:\n%s", hosts)
			}
		})
	}
}

// lastRevision is the repository's head (the fixture commits once).
func (f *bootFixture) lastRevision() string { return "1" }

// Off EC2, --user-data and --instance-type stand in for the metadata
// service, which is not asked at all.
func TestSelfDeployStandIns(t *testing.T) {
	f := newBootFixture(t)
	t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", closedPort(t))
	ud := filepath.Join(f.dir, "user-data")
	os.WriteFile(ud, []byte("DB=10.0.0.7;ROLE=job\n"), 0o644)
	code, out := f.selfDeploy("--user-data", ud, "--instance-type", "m1.large", "production")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, out)
	}
	if !strings.Contains(out, "instance metadata: not asked") || !strings.Contains(f.callsOf("delayed_job"), "-n 8 start") {
		t.Errorf("output:\n%s\ncalls: %s", out, f.callsOf("delayed_job"))
	}
}

// Whatever is wrong with the user data, the role or the stage is found
// before the machine changes: the hosts file and the deploy directory
// stay as they were, nothing is started, exit 2.
func TestSelfDeployMistakesChangeNothing(t *testing.T) {
	f := newBootFixture(t)
	before, _ := os.Stat(f.hosts)
	for _, tc := range []struct{ userData, want string }{
		{"DB=10.0.0.5;ROLE", "user data: `ROLE`: want KEY=VALUE"},
		{"DB=10.0.0.5;ROLE=app;role=job", "user data: `role=job`: role is given twice with different values"},
		{`["ROLE=app"]`, "user data: `[\"ROLE=app\"]`: not a JSON object"},
		{"DB=10.0.0.5;ROLE=web;STAGE=production", `role "web": no task start:web to start it; the Deployfile's roles: app, job`},
		{"DB=10.0.0.5;STAGE=production", "no role: the user data has no ROLE"},
		{"DB=10.0.0.5;ROLE=app", "no stage: give one (davit self-deploy STAGE) or STAGE in the user data; stages: production"},
		{"DB=10.0.0.5;ROLE=app;STAGE=prod", `stage from the user data: unknown stage "prod"; stages: production`},
		{"DB=10.0.0.500;ROLE=app;STAGE=production", `etc_hosts: dbhost: "10.0.0.500" is not an IP address`},
		{"ROLE=app;STAGE=production", `unknown variable "db"`},
	} {
		f.startMock("m1.small", tc.userData)
		code, out := f.selfDeploy()
		if code != 2 {
			t.Errorf("%s: exit %d, want 2\n%s", tc.userData, code, out)
		}
		if !strings.Contains(out, tc.want) {
			t.Errorf("%s: the error lacks %q:\n%s", tc.userData, tc.want, out)
		}
		if b, _ := os.ReadFile(f.hosts); string(b) != imageHosts {
			t.Errorf("%s: the hosts file changed:\n%s", tc.userData, b)
		}
		if after, _ := os.Stat(f.hosts); !os.SameFile(before, after) {
			t.Errorf("%s: the hosts file was replaced", tc.userData)
		}
		if ents, _ := os.ReadDir(f.deployTo); len(ents) != 0 {
			t.Errorf("%s: the deploy directory has %d entries", tc.userData, len(ents))
		}
		for _, name := range []string{"bundle", "mongrel_rails", "delayed_job"} {
			if c := f.callsOf(name); c != "" {
				t.Errorf("%s: %s ran: %s", tc.userData, name, c)
			}
		}
	}
}

// Off EC2 without stand-ins, the boot fails within the metadata timeout,
// saying what to do, and changes nothing.
func TestSelfDeployOffEC2(t *testing.T) {
	f := newBootFixture(t)
	t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", closedPort(t))
	code, out := f.selfDeploy("--metadata-timeout", "2s")
	if code == 0 {
		t.Fatalf("exit 0\n%s", out)
	}
	if !strings.Contains(out, "davit: instance metadata instance-id from http://127.0.0.1:") ||
		!strings.Contains(out, "is this an EC2 instance? (off EC2, give --user-data and --instance-type)") {
		t.Errorf("output:\n%s", out)
	}
	if b, _ := os.ReadFile(f.hosts); string(b) != imageHosts {
		t.Errorf("the hosts file changed:\n%s", b)
	}
}

// --install writes the systemd unit for this very command and says how
// to enable it.
func TestSelfDeployInstall(t *testing.T) {
	dir := t.TempDir()
	code, out := runDavit(t, "-f", "../../../examples/payroll/Deployfile", "self-deploy", "--install", "--install-dir", dir, "production")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, out)
	}
	unit, err := os.ReadFile(filepath.Join(dir, boot.UnitName))
	if err != nil {
		t.Fatal(err)
	}
	df, _ := filepath.Abs("../../../examples/payroll/Deployfile")
	if !strings.Contains(string(unit), " -f "+df+" --format plain self-deploy production\n") || !strings.Contains(string(unit), "After=network-online.target") {
		t.Errorf("unit:\n%s", unit)
	}
	if !strings.Contains(out, "wrote "+filepath.Join(dir, boot.UnitName)) || !strings.Contains(out, "systemctl daemon-reload && systemctl enable davit-self-deploy.service") {
		t.Errorf("output:\n%s", out)
	}
}
