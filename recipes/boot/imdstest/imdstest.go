// Package imdstest runs AWS's own EC2 instance metadata mock
// (github.com/aws/amazon-ec2-metadata-mock, pinned in .ci/tools/go.mod)
// on 127.0.0.1 for tests. The binary is built once from that tools module
// into a cache directory keyed by the module's go.sum, so later runs
// start it at once.
package imdstest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// MockPackage is the mock's main package in the tools module.
const MockPackage = "github.com/aws/amazon-ec2-metadata-mock/cmd/ec2-metadata-mock"

// CacheEnv, when set, is the directory the built tools are kept in
// (default: the user cache directory's davit-test-tools).
const CacheEnv = "DAVIT_TEST_TOOLS"

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
	port := freePort(t)
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

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Binary returns the mock's path, building it first if the cache has no
// build of the tools module's current go.sum. Concurrent test processes
// wait for one build.
func Binary() (string, error) {
	tools, err := toolsDir()
	if err != nil {
		return "", err
	}
	sum, err := os.ReadFile(filepath.Join(tools, "go.sum"))
	if err != nil {
		return "", fmt.Errorf("metadata mock: %w", err)
	}
	mod, err := os.ReadFile(filepath.Join(tools, "go.mod"))
	if err != nil {
		return "", fmt.Errorf("metadata mock: %w", err)
	}
	h := sha256.Sum256(append(mod, sum...))
	cache := os.Getenv(CacheEnv)
	if cache == "" {
		uc, err := os.UserCacheDir()
		if err != nil {
			return "", fmt.Errorf("metadata mock: no cache directory (set %s): %w", CacheEnv, err)
		}
		cache = filepath.Join(uc, "davit-test-tools")
	}
	dir := filepath.Join(cache, hex.EncodeToString(h[:8]))
	bin := filepath.Join(dir, "ec2-metadata-mock")
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("metadata mock: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", fmt.Errorf("metadata mock: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("metadata mock: lock %s: %w", dir, err)
	}
	if _, err := os.Stat(bin); err == nil {
		return bin, nil // another process built it meanwhile
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	tmp := bin + ".tmp"
	build := exec.CommandContext(ctx, "go", "build", "-o", tmp, MockPackage)
	build.Dir = tools
	build.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=readonly")
	var out bytes.Buffer
	build.Stdout, build.Stderr = &out, &out
	if err := build.Run(); err != nil {
		return "", fmt.Errorf("build the metadata mock in %s: %w\n%s", tools, err, out.String())
	}
	if err := os.Rename(tmp, bin); err != nil {
		return "", fmt.Errorf("metadata mock: %w", err)
	}
	return bin, nil
}

// toolsDir is .ci/tools of the davit module this test runs in.
func toolsDir() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		mod, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.HasPrefix(string(mod), "module github.com/davit-deploy/davit\n") {
			return filepath.Join(dir, ".ci", "tools"), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("metadata mock: not inside the davit module (no go.mod of github.com/davit-deploy/davit above the working directory)")
		}
		dir = parent
	}
}
