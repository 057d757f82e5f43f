package ssh

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/davit-deploy/davit/deploy/sshtest"
)

func TestTransfer(t *testing.T) {
	data := make([]byte, 20<<20)
	rand.Read(data)
	sum := sha256.Sum256(data)
	for _, tc := range []struct {
		name    string
		opts    sshtest.Options
		disable bool
	}{
		{"sftp", sshtest.Options{}, false},
		{"no-sftp-server", sshtest.Options{NoSFTP: true}, false},
		{"sftp-disabled", sshtest.Options{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, b := fleetBackend(t, tc.opts, func(o *Options) { o.DisableSFTP = tc.disable })
			dir := output(t, b, "mktemp -d")
			t.Cleanup(func() { output(t, b, "rm -rf "+dir) })
			target := dir + "/big file.bin"
			output(t, b, "echo old > '"+target+"'")

			start := time.Now()
			// A plain io.Reader: no size known in advance.
			if err := b.Upload(context.Background(), io.MultiReader(bytes.NewReader(data)), target, 0o640); err != nil {
				t.Fatal(err)
			}
			up := time.Since(start)
			if got := output(t, b, "sha256sum '"+target+"' | cut -d' ' -f1"); got != hexSum(sum) {
				t.Errorf("remote sha256 %s, want %s", got, hexSum(sum))
			}
			if got := output(t, b, "stat -c %a '"+target+"'"); got != "640" {
				t.Errorf("mode %s, want 640", got)
			}
			if got := output(t, b, "ls -A "+dir); got != "big file.bin" {
				t.Errorf("directory holds %q: temporary file left behind?", got)
			}

			start = time.Now()
			h := sha256.New()
			var n countWriter
			if err := b.Download(context.Background(), target, io.MultiWriter(h, &n)); err != nil {
				t.Fatal(err)
			}
			if got := h.Sum(nil); !bytes.Equal(got, sum[:]) || n != countWriter(len(data)) {
				t.Errorf("downloaded %d bytes with sha256 %x", n, got)
			}
			t.Logf("20 MB: upload %s, download %s", up, time.Since(start))

			err := b.Download(context.Background(), dir+"/missing", io.Discard)
			if err == nil || !strings.Contains(err.Error(), "host1") || !strings.Contains(err.Error(), "missing") {
				t.Errorf("missing file: %v", err)
			}
			err = b.Upload(context.Background(), strings.NewReader("x"), dir+"/no/such/dir/f", 0o644)
			if err == nil || !strings.Contains(err.Error(), "host1") {
				t.Errorf("upload into a missing directory: %v", err)
			}
			// Small private file: mode applies.
			if err := b.Upload(context.Background(), strings.NewReader("secret"), dir+"/key", 0o600); err != nil {
				t.Fatal(err)
			}
			if got := output(t, b, "stat -c %a "+dir+"/key; cat "+dir+"/key"); got != "600\nsecret" {
				t.Errorf("got %q", got)
			}
		})
	}
}

func TestUploadCancel(t *testing.T) {
	_, b := fleetBackend(t, sshtest.Options{}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	r := &slowReader{cancel: cancel}
	err := b.Upload(ctx, r, "/tmp/davit-cancelled-upload", 0o644)
	if err == nil || !strings.Contains(err.Error(), "canceled") {
		t.Fatalf("got %v", err)
	}
	if got := output(t, b, "ls -a /tmp | grep -c davit-cancelled-upload || true"); got != "0" {
		t.Errorf("cancelled upload left %s files", got)
	}
}

// slowReader produces data and cancels after the first megabyte.
type slowReader struct {
	n      int
	cancel func()
}

func (r *slowReader) Read(p []byte) (int, error) {
	r.n += len(p)
	if r.n > 1<<20 {
		r.cancel()
	}
	return len(p), nil
}

type countWriter int

func (c *countWriter) Write(p []byte) (int, error) {
	*c += countWriter(len(p))
	return len(p), nil
}

func hexSum(s [32]byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 64)
	for i, b := range s {
		out[2*i], out[2*i+1] = digits[b>>4], digits[b&15]
	}
	return string(out)
}
