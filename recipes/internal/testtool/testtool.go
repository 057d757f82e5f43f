// Package testtool builds the third-party programs the tests run (AWS's
// metadata mock, kumo) from their own tools modules under .ci/tools, once
// per version: the binary is kept in a cache directory keyed by the tools
// module's go.mod and go.sum, so a rerun starts it at once and a changed
// pin builds afresh.
package testtool

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// CacheEnv, when set, is the directory the built tools are kept in
// (default: davit-test-tools in the user's cache directory).
const CacheEnv = "DAVIT_TEST_TOOLS"

// Tool is one program built from a tools module of this repository.
type Tool struct {
	Name    string        // for messages and the cache directory: "kumo"
	Module  string        // the tools module, relative to the davit module's root: ".ci/tools/kumo"
	Package string        // the main package to build
	Timeout time.Duration // bound on a cold build
}

// Binary returns the tool's path, building it first if the cache has no
// build of the tools module's current go.mod and go.sum. Concurrent test
// processes wait for one build (a file lock), and a build killed half-way
// leaves no binary behind (it is renamed into place when complete).
func (tl Tool) Binary() (string, error) {
	tools, err := moduleDir(tl.Module)
	if err != nil {
		return "", fmt.Errorf("%s: %w", tl.Name, err)
	}
	mod, err := os.ReadFile(filepath.Join(tools, "go.mod"))
	if err != nil {
		return "", fmt.Errorf("%s: %w", tl.Name, err)
	}
	sum, err := os.ReadFile(filepath.Join(tools, "go.sum"))
	if err != nil {
		return "", fmt.Errorf("%s: %w", tl.Name, err)
	}
	h := sha256.Sum256(append(mod, sum...))
	cache := os.Getenv(CacheEnv)
	if cache == "" {
		uc, err := os.UserCacheDir()
		if err != nil {
			return "", fmt.Errorf("%s: no cache directory (set %s): %w", tl.Name, CacheEnv, err)
		}
		cache = filepath.Join(uc, "davit-test-tools")
	}
	dir := filepath.Join(cache, tl.Name+"-"+hex.EncodeToString(h[:8]))
	bin := filepath.Join(dir, filepath.Base(tl.Package))
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("%s: %w", tl.Name, err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", fmt.Errorf("%s: %w", tl.Name, err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("%s: lock %s: %w", tl.Name, dir, err)
	}
	if _, err := os.Stat(bin); err == nil {
		return bin, nil // another process built it meanwhile
	}
	ctx, cancel := context.WithTimeout(context.Background(), tl.Timeout)
	defer cancel()
	tmp := bin + ".tmp"
	build := exec.CommandContext(ctx, "go", "build", "-o", tmp, tl.Package)
	build.Dir = tools
	build.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=readonly")
	var out bytes.Buffer
	build.Stdout, build.Stderr = &out, &out
	if err := build.Run(); err != nil {
		return "", fmt.Errorf("build %s in %s: %w\n%s", tl.Name, tools, err, out.String())
	}
	if err := os.Rename(tmp, bin); err != nil {
		return "", fmt.Errorf("%s: %w", tl.Name, err)
	}
	return bin, nil
}

// moduleDir is rel inside the davit module this test runs in.
func moduleDir(rel string) (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		mod, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.HasPrefix(string(mod), "module github.com/davit-deploy/davit\n") {
			return filepath.Join(dir, filepath.FromSlash(rel)), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("not inside the davit module (no go.mod of github.com/davit-deploy/davit above the working directory)")
		}
		dir = parent
	}
}

// FreePort is a TCP port on 127.0.0.1 that nothing listened on a moment
// ago, for a program that takes its port as a flag.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
