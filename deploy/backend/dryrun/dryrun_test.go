package dryrun

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/davit-deploy/davit/deploy"
)

func TestRun(t *testing.T) {
	var report, stdout, stderr bytes.Buffer
	b := New(reporter("web1", &report))
	c := &deploy.Command{Args: []string{"git", "rev-parse", "HEAD"}, Dir: "/srv/app dir", Env: map[string]string{"RAILS_ENV": "production", "MSG": "it's here"}, User: "deploy"}
	res, err := b.Run(context.Background(), c, &stdout, &stderr)
	if err != nil || res.ExitStatus != 0 {
		t.Fatalf("Run = %+v, %v", res, err)
	}
	if stdout.String() != Placeholder+"\n" || stderr.Len() != 0 {
		t.Errorf("stdout %q, stderr %q", stdout.String(), stderr.String())
	}
	// The full line, with every continuation line prefixed too.
	want := "[web1] would run: " + strings.ReplaceAll(c.String(), "\n", "\n[web1] ") + "\n"
	if report.String() != want {
		t.Errorf("report:\n%s\nwant:\n%s", report.String(), want)
	}
	if !strings.Contains(report.String(), "sudo -n -u deploy -- sh -c 'cd '\\''/srv/app dir'\\''") {
		t.Errorf("report lacks the rendered prefix: %s", report.String())
	}

	report.Reset()
	b.Run(context.Background(), &deploy.Command{Args: []string{"true"}}, nil, nil)
	if report.String() != "[web1] would run: true\n" {
		t.Errorf("report %q", report.String())
	}
}

func TestRunStdinNotRead(t *testing.T) {
	var report bytes.Buffer
	stdin := &failReader{t: t}
	_, err := New(reporter("h", &report)).Run(context.Background(), &deploy.Command{Args: []string{"cat"}, Stdin: stdin}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if report.String() != "[h] would run (with stdin): cat\n" {
		t.Errorf("report %q", report.String())
	}
}

func TestRunInvalid(t *testing.T) {
	var report bytes.Buffer
	b := New(reporter("h", &report))
	for _, c := range []*deploy.Command{
		{},
		{Args: []string{"echo"}, Umask: "22; rm -rf /"},
		{Args: []string{"a\x00b"}},
	} {
		if _, err := b.Run(context.Background(), c, nil, nil); err == nil {
			t.Errorf("%+v: no error", c)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := b.Run(ctx, &deploy.Command{Args: []string{"true"}}, nil, nil); err != context.Canceled {
		t.Errorf("cancelled Run: %v", err)
	}
	if report.Len() != 0 {
		t.Errorf("reported commands that would not run: %q", report.String())
	}
}

func TestUploadDownload(t *testing.T) {
	var report bytes.Buffer
	b := New(reporter("web1", &report))
	if err := b.Upload(context.Background(), &failReader{t: t}, "/srv/app/shared/config/database.yml", 0o640); err != nil {
		t.Fatal(err)
	}
	var w bytes.Buffer
	if err := b.Download(context.Background(), "/srv/app/REVISION file", &w); err != nil {
		t.Fatal(err)
	}
	if w.Len() != 0 {
		t.Errorf("download wrote %q", w.String())
	}
	want := "[web1] would upload /srv/app/shared/config/database.yml (mode 0640)\n" +
		"[web1] would download '/srv/app/REVISION file'\n"
	if report.String() != want {
		t.Errorf("report:\n%s\nwant:\n%s", report.String(), want)
	}
	if err := b.Close(); err != nil {
		t.Error(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if b.Upload(ctx, nil, "/x", 0o644) == nil || b.Download(ctx, "/x", &w) == nil {
		t.Error("cancelled transfer succeeded")
	}
}

// TestConcurrent has many goroutines use one backend (run with -race): each
// command is reported in one call, never in pieces.
func TestConcurrent(t *testing.T) {
	var report bytes.Buffer
	b := New(reporter("h", &report))
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				c := &deploy.Command{Args: []string{"echo", fmt.Sprint(g, "-", i)}, Dir: "/d"}
				var out bytes.Buffer
				if _, err := b.Run(context.Background(), c, &out, nil); err != nil || out.String() != Placeholder+"\n" {
					t.Errorf("Run: %q %v", out.String(), err)
				}
			}
		})
	}
	wg.Wait()
	lines := strings.Split(strings.TrimSuffix(report.String(), "\n"), "\n")
	if len(lines) != 2*8*50 {
		t.Fatalf("%d lines", len(lines))
	}
	for i := 0; i < len(lines); i += 2 {
		if !strings.HasPrefix(lines[i], "[h] would run: cd /d && { echo ") || lines[i+1] != "[h] }" {
			t.Fatalf("torn report at line %d: %q %q", i, lines[i], lines[i+1])
		}
	}
}

var _ deploy.Backend = (*Backend)(nil)

type failReader struct{ t *testing.T }

func (r *failReader) Read([]byte) (int, error) {
	r.t.Error("dry run read its input")
	return 0, fmt.Errorf("read")
}

// reporter renders reports as the CLI's plain format would: each line
// prefixed with the host.
func reporter(host string, buf *bytes.Buffer) func(string) {
	var mu sync.Mutex
	return func(msg string) {
		mu.Lock()
		defer mu.Unlock()
		prefix := "[" + host + "] "
		buf.WriteString(prefix + strings.ReplaceAll(msg, "\n", "\n"+prefix) + "\n")
	}
}
