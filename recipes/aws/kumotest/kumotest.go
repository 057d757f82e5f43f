// Package kumotest runs kumo (github.com/sivchari/kumo, pinned in
// .ci/tools/kumo/go.mod), a third-party AWS emulator, on 127.0.0.1 for
// tests, so davit's EC2 and ELBv2 calls are also answered by code nobody
// here wrote. kumo is a large program (a cold build takes minutes), so it
// is built once from its own tools module into a cache directory keyed by
// that module's go.mod and go.sum; later runs start it at once.
//
// kumo is not faithful everywhere: its DescribeInstances ignores filters
// and pagination and returns no tags, RunInstances drops UserData and
// TagSpecifications, DryRun is ignored, instances run and targets are
// healthy at once, and a deregistered target is gone at once (no
// draining). Tests against it assert only what it serves as AWS does.
package kumotest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Package is kumo's main package in the tools module.
const Package = "github.com/sivchari/kumo/cmd/kumo"

// CacheEnv, when set, is the directory the built tools are kept in
// (default: the user cache directory's davit-test-tools), as for the
// metadata mock of recipes/boot/imdstest.
const CacheEnv = "DAVIT_TEST_TOOLS"

// Region is the region kumo is started for: the region part of the ARNs
// it makes. Tests point the SDK at the same one.
const Region = "eu-west-1"

// buildTimeout bounds a cold build of kumo (5-10 minutes on a small
// machine).
const buildTimeout = 20 * time.Minute

// Start builds kumo (once per tools module) and starts it on a free port
// of 127.0.0.1 with empty, in-memory state; it is killed when the test
// ends. It returns the endpoint, for AWS_ENDPOINT_URL.
func Start(t testing.TB) string {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	logPath := filepath.Join(t.TempDir(), "kumo.log")
	log, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	// --host 127.0.0.1: kumo's default is 0.0.0.0, every interface.
	cmd := exec.Command(bin, "serve", "--host", "127.0.0.1", "--port", strconv.Itoa(port))
	cmd.Env = env()
	cmd.Dir = t.TempDir()
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start kumo: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGKILL)
		<-exited
	})
	url := "http://127.0.0.1:" + strconv.Itoa(port)
	readLog := func() string { b, _ := os.ReadFile(logPath); return string(b) }
	deadline := time.Now().Add(30 * time.Second)
	client := &http.Client{Timeout: time.Second}
	for {
		resp, err := client.Get(url + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return url
			}
		}
		select {
		case <-exited:
			t.Fatalf("kumo exited:\n%s", readLog())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("kumo did not answer %s/health within 30s:\n%s", url, readLog())
		}
	}
}

// env is kumo's environment: this process's without any KUMO_ setting
// (no data directory, so nothing persists between runs; no pprof
// listener; no init scripts), with quiet logs and the test region.
func env() []string {
	var out []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "KUMO_") || strings.HasPrefix(kv, "AWS_DEFAULT_REGION=") {
			continue
		}
		out = append(out, kv)
	}
	return append(out, "KUMO_LOG_LEVEL=warn", "AWS_DEFAULT_REGION="+Region)
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

// Binary returns kumo's path, building it first if the cache has no build
// of the tools module's current go.mod and go.sum. Concurrent test
// processes wait for one build.
func Binary() (string, error) {
	tools, err := toolsDir()
	if err != nil {
		return "", err
	}
	mod, err := os.ReadFile(filepath.Join(tools, "go.mod"))
	if err != nil {
		return "", fmt.Errorf("kumo: %w", err)
	}
	sum, err := os.ReadFile(filepath.Join(tools, "go.sum"))
	if err != nil {
		return "", fmt.Errorf("kumo: %w", err)
	}
	h := sha256.Sum256(append(mod, sum...))
	cache := os.Getenv(CacheEnv)
	if cache == "" {
		uc, err := os.UserCacheDir()
		if err != nil {
			return "", fmt.Errorf("kumo: no cache directory (set %s): %w", CacheEnv, err)
		}
		cache = filepath.Join(uc, "davit-test-tools")
	}
	dir := filepath.Join(cache, "kumo-"+hex.EncodeToString(h[:8]))
	bin := filepath.Join(dir, "kumo")
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("kumo: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", fmt.Errorf("kumo: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("kumo: lock %s: %w", dir, err)
	}
	if _, err := os.Stat(bin); err == nil {
		return bin, nil // another process built it meanwhile
	}
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	tmp := bin + ".tmp"
	build := exec.CommandContext(ctx, "go", "build", "-o", tmp, Package)
	build.Dir = tools
	build.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=readonly")
	var out bytes.Buffer
	build.Stdout, build.Stderr = &out, &out
	if err := build.Run(); err != nil {
		return "", fmt.Errorf("build kumo in %s: %w\n%s", tools, err, out.String())
	}
	if err := os.Rename(tmp, bin); err != nil {
		return "", fmt.Errorf("kumo: %w", err)
	}
	return bin, nil
}

// toolsDir is .ci/tools/kumo of the davit module this test runs in.
func toolsDir() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		mod, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.HasPrefix(string(mod), "module github.com/davit-deploy/davit\n") {
			return filepath.Join(dir, ".ci", "tools", "kumo"), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("kumo: not inside the davit module (no go.mod of github.com/davit-deploy/davit above the working directory)")
		}
		dir = parent
	}
}
