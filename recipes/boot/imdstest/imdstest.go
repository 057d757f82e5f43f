// Package imdstest runs AWS's own EC2 instance metadata mock
// (github.com/aws/amazon-ec2-metadata-mock, pinned in .ci/tools/go.mod)
// on 127.0.0.1 for tests. The binary is built once from that tools module
// into a cache directory keyed by the module's go.sum, so later runs
// start it at once.
package imdstest

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/davit-deploy/davit/recipes/internal/testtool"
)

// MockPackage is the mock's main package in the tools module.
const MockPackage = "github.com/aws/amazon-ec2-metadata-mock/cmd/ec2-metadata-mock"

// tool is the mock's build from the tools module .ci/tools.
var tool = testtool.Tool{Name: "ec2-metadata-mock", Module: ".ci/tools", Package: MockPackage, Timeout: 10 * time.Minute}

// Binary returns the mock's path, building it first when the cache has
// none of the tools module's current pin.
func Binary() (string, error) { return tool.Binary() }

// Config is what the mock serves. Empty fields keep the mock's defaults.
type Config struct {
	InstanceID     string
	InstanceType   string
	AZ             string
	Region         string
	LocalIPv4      string
	PublicIPv4     string
	LocalHostname  string
	PublicHostname string
	// UserData is served as the instance's user data (the mock's config
	// holds it base64-encoded and serves it decoded).
	UserData string
	// V1Only puts a proxy in front of the mock that refuses the PUT asking
	// for an IMDSv2 token, as a metadata service with IMDSv2 unavailable
	// answers; everything else passes through to the mock, which then
	// runs without --imdsv2.
	V1Only bool
}

// Mock is a running metadata mock.
type Mock struct {
	// URL is the endpoint, for AWS_EC2_METADATA_SERVICE_ENDPOINT.
	URL string

	t      testing.TB
	bin    string
	args   []string
	home   string
	port   int
	logf   string
	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
}

// Start builds (once) and starts the mock, stopped when the test ends.
func Start(t testing.TB, cfg Config) *Mock {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "aemm-config.json")
	if err := os.WriteFile(cfgPath, mockConfig(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	port := testtool.FreePort(t)
	m := &Mock{t: t, bin: bin, home: filepath.Join(dir, "home"), port: port, logf: filepath.Join(dir, "mock.log"),
		args: []string{"--hostname", "127.0.0.1", "--port", strconv.Itoa(port), "--config-file", cfgPath}}
	if !cfg.V1Only {
		m.args = append(m.args, "--imdsv2")
	}
	if err := os.Mkdir(m.home, 0o700); err != nil {
		t.Fatal(err)
	}
	m.URL = "http://127.0.0.1:" + strconv.Itoa(port)
	m.start()
	t.Cleanup(m.stop)
	if cfg.V1Only {
		target, _ := url.Parse(m.URL)
		proxy := httputil.NewSingleHostReverseProxy(target)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPut && r.URL.Path == "/latest/api/token" {
				http.Error(w, "Forbidden", http.StatusForbidden)
				return
			}
			proxy.ServeHTTP(w, r)
		}))
		t.Cleanup(srv.Close)
		m.URL = srv.URL
	}
	return m
}

// Restart stops the mock and starts it again on the same port: it forgets
// every session token it issued, as tokens that expire do.
func (m *Mock) Restart() {
	m.t.Helper()
	m.stop()
	m.start()
}

// Log is what the mock printed (every request it received).
func (m *Mock) Log() string {
	b, _ := os.ReadFile(m.logf)
	return string(b)
}

func (m *Mock) start() {
	m.t.Helper()
	log, err := os.OpenFile(m.logf, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		m.t.Fatal(err)
	}
	defer log.Close()
	cmd := exec.Command(m.bin, m.args...)
	// The mock reads and writes its configuration under $HOME.
	cmd.Env = append(os.Environ(), "HOME="+m.home)
	cmd.Dir = m.home
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		m.t.Fatalf("start the metadata mock: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	m.mu.Lock()
	m.cmd, m.exited = cmd, exited
	m.mu.Unlock()
	// Ready when it answers a token request.
	deadline := time.Now().Add(15 * time.Second)
	for {
		req, _ := http.NewRequest(http.MethodPut, "http://127.0.0.1:"+strconv.Itoa(m.port)+"/latest/api/token", nil)
		req.Header.Set("X-aws-ec2-metadata-token-ttl-seconds", "60")
		resp, err := (&http.Client{Timeout: time.Second}).Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-exited:
			m.t.Fatalf("the metadata mock exited:\n%s", m.Log())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			m.stop()
			m.t.Fatalf("the metadata mock did not answer within 15s:\n%s", m.Log())
		}
	}
}

func (m *Mock) stop() {
	m.mu.Lock()
	cmd, exited := m.cmd, m.exited
	m.cmd = nil
	m.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGKILL)
	<-exited
}

// mockConfig is the mock's config file: the metadata values to change
// and the user data, base64 as the mock wants it.
func mockConfig(cfg Config) []byte {
	values := map[string]string{}
	set := func(k, v string) {
		if v != "" {
			values[k] = v
		}
	}
	set("instance-id", cfg.InstanceID)
	set("instance-type", cfg.InstanceType)
	set("placement-availability-zone", cfg.AZ)
	set("placement-region", cfg.Region)
	set("local-ipv4", cfg.LocalIPv4)
	set("public-ipv4", cfg.PublicIPv4)
	set("local-hostname", cfg.LocalHostname)
	set("public-hostname", cfg.PublicHostname)
	b, _ := json.Marshal(map[string]any{
		"metadata": map[string]any{"values": values},
		"userdata": map[string]any{"values": map[string]string{"userdata": base64.StdEncoding.EncodeToString([]byte(cfg.UserData))}},
	})
	return b
}
