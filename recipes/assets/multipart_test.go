package assets

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

const bigSize = 20 << 20 // 20 MiB: three parts of the default 8 MiB

// writeBig writes a file of n pseudo-random bytes (seeded, so a test can
// write the same content again) and returns its MD5.
func (f *fixture) writeBig(rel string, n int, seed uint64) string {
	f.t.Helper()
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(seed, seed))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	f.write(rel, string(b))
	sum := md5.Sum(b)
	return hex.EncodeToString(sum[:])
}

// stored is the MD5 of an object's content as the fake S3 holds it.
func (f *fixture) stored(key string) string {
	f.t.Helper()
	out, err := f.client.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(testBucket), Key: aws.String(key)})
	if err != nil {
		f.t.Fatal(err)
	}
	defer out.Body.Close()
	h := md5.New()
	if _, err := io.Copy(h, out.Body); err != nil {
		f.t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func parts(reqs []sent) (create, uploadParts, complete int, partsWithoutMD5 []string) {
	for _, q := range reqs {
		switch {
		case q.method == http.MethodPost && strings.Contains(q.query, "uploads"):
			create++
		case q.method == http.MethodPut && strings.Contains(q.query, "partNumber="):
			uploadParts++
			if q.header.Get("Content-Md5") == "" {
				partsWithoutMD5 = append(partsWithoutMD5, q.query)
			}
		case q.method == http.MethodPost && strings.Contains(q.query, "uploadId="):
			complete++
		}
	}
	return
}

// A 20 MB file goes in parts, each with its Content-MD5, the whole with
// the md5 metadata and the file's headers; the next sync decides it from
// the listing alone (its ETag "hex-3" is the one davit predicts), and a
// change of the same size is found (one HEAD, for the metadata) and sent.
func TestLargeFileGoesMultipartAndIsSkippedNextTime(t *testing.T) {
	f := newFixture(t)
	sum := f.writeBig("videos/intro.mp4", bigSize, 1)
	f.write("index.html", "<h1>hi</h1>")
	settings := `set("assets_cache_control", "max-age=600")`
	reqs, lines, err := f.sync(settings, false)
	if err != nil {
		t.Fatal(err)
	}
	create, up, complete, noMD5 := parts(reqs)
	if create != 1 || up != 3 || complete != 1 || len(noMD5) != 0 {
		t.Fatalf("multipart: %d create, %d parts (without Content-MD5: %v), %d complete; want 1, 3 (all with), 1", create, up, noMD5, complete)
	}
	for _, q := range reqs {
		if q.method == http.MethodPost && strings.Contains(q.query, "uploads") {
			if got := q.header.Get("X-Amz-Meta-Md5"); got != sum {
				t.Errorf("md5 metadata %q, want %q", got, sum)
			}
			if q.header.Get("Cache-Control") != "max-age=600" || q.header.Get("X-Amz-Acl") != "public-read" || q.header.Get("Content-Type") != "video/mp4" {
				t.Errorf("multipart upload headers %v", q.header)
			}
		}
	}
	if got := f.stored("videos/intro.mp4"); got != sum {
		t.Errorf("stored content's MD5 %s, want %s", got, sum)
	}
	if s := summary(t, lines); !strings.Contains(s, "uploaded 2") {
		t.Errorf("summary %q", s)
	}

	reqs, lines, err = f.sync(settings, false)
	if err != nil {
		t.Fatal(err)
	}
	onlyListing(t, reqs)
	if s := summary(t, lines); !strings.Contains(s, "uploaded 0") || !strings.Contains(s, "unchanged 2") {
		t.Errorf("summary %q", s)
	}

	changed := f.writeBig("videos/intro.mp4", bigSize, 2)
	reqs, _, err = f.sync(settings, false)
	if err != nil {
		t.Fatal(err)
	}
	if n := count(reqs, http.MethodHead); n != 1 {
		t.Errorf("%d HEADs for a changed multipart object of the same size, want 1", n)
	}
	if create, up, complete, _ := parts(reqs); create != 1 || up != 3 || complete != 1 {
		t.Errorf("changed file not sent again in parts: %v", reqs)
	}
	if got := f.stored("videos/intro.mp4"); got != changed {
		t.Errorf("stored %s after the change, want %s", got, changed)
	}
}

// An object another tool uploaded in parts of another size has an ETag
// davit cannot predict: one HEAD reads the md5 metadata; without it the
// file is sent again, after which the listing suffices.
func TestMultipartObjectOfAnotherTool(t *testing.T) {
	f := newFixture(t)
	f.writeBig("big.bin", bigSize, 3)
	other := s3.New(s3.Options{Region: "us-east-1", Credentials: aws.AnonymousCredentials{}}, f.opts)
	tm := transfermanager.New(other, func(o *transfermanager.Options) {
		o.PartSizeBytes = 5 << 20
		o.MultipartUploadThreshold = 5 << 20
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
	})
	file, err := os.Open(filepath.Join(f.dir, "public", "big.bin"))
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	if _, err := tm.UploadObject(context.Background(), &transfermanager.UploadObjectInput{Bucket: aws.String(testBucket), Key: aws.String("big.bin"), Body: file}); err != nil {
		t.Fatal(err)
	}
	if e := f.rec.partETags["big.bin"]; !strings.HasSuffix(e, "-4") {
		t.Fatalf("the other tool's upload has ETag %q; want one of 4 parts", e)
	}
	reqs, lines, err := f.sync("", false)
	if err != nil {
		t.Fatal(err)
	}
	if n := count(reqs, http.MethodHead); n != 1 {
		t.Errorf("%d HEADs, want 1", n)
	}
	if s := summary(t, lines); !strings.Contains(s, "uploaded 1") {
		t.Errorf("summary %q; the object has no md5 metadata, so it is sent", s)
	}
	reqs, _, err = f.sync("", false)
	if err != nil {
		t.Fatal(err)
	}
	if len(reqs) != 1 {
		t.Errorf("sync after davit's upload sent %v; want the listing only", reqs)
	}
}

// Every upload carries Content-MD5: a body corrupted on the way is
// refused by S3, and the sync fails naming the file, deleting nothing.
func TestCorruptedUploadFailsNamingTheFile(t *testing.T) {
	for _, tc := range []struct {
		name, file string
		size       int
		pick       func(*http.Request) bool
	}{
		{"single part", "app.js", 2000, func(r *http.Request) bool {
			return r.Method == http.MethodPut && strings.HasSuffix(r.URL.Path, "/app.js")
		}},
		{"one part of many", "big.bin", bigSize, func(r *http.Request) bool {
			return r.Method == http.MethodPut && r.URL.Query().Get("partNumber") == "2"
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			f.write("stale.txt", "s")
			f.write("keep1.txt", "1")
			f.write("keep2.txt", "2")
			if _, _, err := f.sync("", false); err != nil {
				t.Fatal(err)
			}
			os.Remove(filepath.Join(f.dir, "public", "stale.txt"))
			f.writeBig(tc.file, tc.size, 4)
			f.rec.corrupt = tc.pick
			_, _, err := f.sync(`set("assets_delete", True)`, false)
			if err == nil {
				t.Fatal("a corrupted upload succeeded")
			}
			abs := filepath.Join(f.dir, "public", tc.file)
			if !strings.Contains(err.Error(), abs) || !strings.Contains(err.Error(), "BadDigest") || !strings.Contains(err.Error(), "nothing was deleted") {
				t.Errorf("err = %v; want it to name %s, S3's BadDigest and that nothing was deleted", err, abs)
			}
			if k := strings.Join(f.keys(), ","); k != "keep1.txt,keep2.txt,stale.txt" {
				t.Errorf("keys %s after the failure", k)
			}
		})
	}
}
