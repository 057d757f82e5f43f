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
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/davit-deploy/davit/recipes/internal/testtool"
)

// Package is kumo's main package in the tools module.
const Package = "github.com/sivchari/kumo/cmd/kumo"

// Region is the region kumo is started for: the region part of the ARNs
// it makes. Tests point the SDK at the same one.
const Region = "eu-west-1"

// tool is kumo's build from its own tools module; a cold build takes 5-10
// minutes on a small machine.
var tool = testtool.Tool{Name: "kumo", Module: ".ci/tools/kumo", Package: Package, Timeout: 20 * time.Minute}

// Binary returns kumo's path, building it first when the cache has none
// of the tools module's current pin.
func Binary() (string, error) { return tool.Binary() }

// Start builds kumo (once per tools module) and starts it on a free port
// of 127.0.0.1 with empty, in-memory state; it is killed when the test
// ends. It returns the endpoint, for AWS_ENDPOINT_URL.
func Start(t testing.TB) string {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		t.Fatal(err)
	}
	port := testtool.FreePort(t)
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
