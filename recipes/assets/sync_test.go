package assets

import (
	"bytes"
	"context"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudfront"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/davit-deploy/davit/deploy/output"
	"github.com/davit-deploy/davit/deploy/output/outputtest"
	"github.com/davit-deploy/davit/recipes/assets/cloudfronttest"
	"github.com/davit-deploy/davit/recipes/aws/awstest"
	"github.com/davit-deploy/davit/tasks"
	"github.com/davit-deploy/davit/tasks/run"
)

const testBucket = "cdn-origin"

// sent is one request as it left the client.
type sent struct {
	method, path, query string
	header              http.Header
}

// recorder is an http.RoundTripper in front of the fake S3 that keeps
// every request, for what gofakes3 does not keep (Cache-Control, ACL) and
// for counting round trips. It also makes the listing S3's where gofakes3
// differs: an object uploaded in parts is listed by S3 with the ETag its
// CompleteMultipartUpload returned ("hex-N"), by gofakes3 with the MD5 of
// the whole. And it can corrupt a request's body on the way.
type recorder struct {
	mu   sync.Mutex
	reqs []sent
	next http.RoundTripper
	// partETags are the keys completed in parts, and their S3 ETags.
	partETags map[string]string
	// corrupt, when set, picks requests whose body gets one byte changed.
	corrupt func(*http.Request) bool
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	r.reqs = append(r.reqs, sent{req.Method, req.URL.Path, req.URL.RawQuery, req.Header.Clone()})
	corrupt := r.corrupt != nil && r.corrupt(req)
	r.mu.Unlock()
	if corrupt && req.Body != nil {
		req.Body = &flipper{ReadCloser: req.Body}
	}
	resp, err := r.next.RoundTrip(req)
	if err != nil || resp.StatusCode/100 != 2 {
		return resp, err
	}
	key := strings.TrimPrefix(req.URL.Path, "/"+testBucket+"/")
	q := req.URL.Query()
	switch {
	case req.Method == http.MethodPost && q.Has("uploadId"):
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
		resp.Body = io.NopCloser(bytes.NewReader(body))
		if m := etagElem.FindSubmatch(body); m != nil {
			r.mu.Lock()
			r.partETags[key] = strings.Trim(html.UnescapeString(string(m[1])), `"`)
			r.mu.Unlock()
		}
	case req.Method == http.MethodPut && !q.Has("partNumber"):
		r.mu.Lock()
		delete(r.partETags, key)
		r.mu.Unlock()
	case req.Method == http.MethodGet && q.Get("list-type") == "2":
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
		r.mu.Lock()
		body = contentsElem.ReplaceAllFunc(body, func(c []byte) []byte {
			k := keyElem.FindSubmatch(c)
			if k == nil {
				return c
			}
			etag, ok := r.partETags[html.UnescapeString(string(k[1]))]
			if !ok {
				return c
			}
			return etagElem.ReplaceAll(c, []byte("<ETag>&#34;"+etag+"&#34;</ETag>"))
		})
		r.mu.Unlock()
		resp.Body = io.NopCloser(bytes.NewReader(body))
		resp.ContentLength = int64(len(body))
		resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
	}
	return resp, nil
}

var (
	contentsElem = regexp.MustCompile(`(?s)<Contents>.*?</Contents>`)
	keyElem      = regexp.MustCompile(`<Key>(.*?)</Key>`)
	etagElem     = regexp.MustCompile(`<ETag>(.*?)</ETag>`)
)

// flipper changes the first byte it reads: a body corrupted in flight.
type flipper struct {
	io.ReadCloser
	done bool
}

func (f *flipper) Read(p []byte) (int, error) {
	n, err := f.ReadCloser.Read(p)
	if n > 0 && !f.done {
		p[0] ^= 0xff
		f.done = true
	}
	return n, err
}

func (r *recorder) take() []sent {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.reqs
	r.reqs = nil
	return out
}

func count(reqs []sent, method string) int {
	n := 0
	for _, q := range reqs {
		if q.method == method {
			n++
		}
	}
	return n
}

func puts(reqs []sent) map[string]sent {
	out := map[string]sent{}
	for _, q := range reqs {
		if q.method == http.MethodPut {
			out[strings.TrimPrefix(q.path, "/"+testBucket+"/")] = q
		}
	}
	return out
}

// fixture is a project directory with a Deployfile and public/, and a
// fake S3 on loopback holding testBucket.
type fixture struct {
	t       *testing.T
	dir     string
	rec     *recorder
	backend *s3mem.Backend
	client  *s3.Client
	opts    func(*s3.Options)
	// cf is the CloudFront test server, with distribution testDistribution.
	cf     *cloudfronttest.Server
	cfOpts func(*cloudfront.Options)
	// terminal is the run's output format; nil records events only.
	terminal output.Sink
}

const testDistribution = "E2QWRUHAPOMQZL"

func newFixture(t *testing.T) *fixture {
	t.Helper()
	backend := s3mem.New()
	if err := backend.CreateBucket(testBucket); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gofakes3.New(backend).Server())
	t.Cleanup(srv.Close)
	// The environment the SDK reads: static credentials, and no file or
	// instance metadata service that could supply others.
	awstest.IsolateSDK(t, "us-east-1", "")
	t.Setenv("XDG_CACHE_HOME", filepath.Join(t.TempDir(), "cache"))
	rec := &recorder{next: http.DefaultTransport, partETags: map[string]string{}}
	opts := func(o *s3.Options) {
		o.BaseEndpoint = aws.String(srv.URL)
		o.UsePathStyle = true
		o.HTTPClient = &http.Client{Transport: rec}
	}
	cf := cloudfronttest.New(200 * time.Millisecond)
	cf.AddDistribution(testDistribution)
	cfSrv := httptest.NewServer(cf)
	t.Cleanup(cfSrv.Close)
	f := &fixture{t: t, dir: t.TempDir(), rec: rec, backend: backend, opts: opts, cf: cf,
		cfOpts: func(o *cloudfront.Options) { o.BaseEndpoint = aws.String(cfSrv.URL) }}
	f.client = s3.New(s3.Options{
		Region:       "us-east-1",
		Credentials:  aws.AnonymousCredentials{},
		BaseEndpoint: aws.String(srv.URL), UsePathStyle: true,
	})
	return f
}

// onlyListing fails t for any request of an unchanged sync but the
// listing's: no HEAD, no upload.
func onlyListing(t *testing.T, reqs []sent) {
	t.Helper()
	for _, q := range reqs {
		if q.method != http.MethodGet || !strings.Contains(q.query, "list-type=2") {
			t.Errorf("unchanged sync sent %s %s?%s; want only the listing", q.method, q.path, q.query)
		}
	}
}

func (f *fixture) write(rel, content string) {
	f.t.Helper()
	p := filepath.Join(f.dir, "public", filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		f.t.Fatal(err)
	}
}

// sync loads a Deployfile that uses the recipe with settings, runs
// assets:sync through the engine, and returns the requests it sent and
// its messages.
func (f *fixture) sync(settings string, dryRun bool) ([]sent, []string, error) {
	f.t.Helper()
	src := "use(\"assets\")\nset(\"assets_bucket\", \"" + testBucket + "\")\n" + settings + "\n"
	if err := os.WriteFile(filepath.Join(f.dir, "Deployfile"), []byte(src), 0o644); err != nil {
		f.t.Fatal(err)
	}
	rec := &outputtest.Recorder{}
	r, err := run.Load(context.Background(), run.Config{
		Deployfile: filepath.Join(f.dir, "Deployfile"),
		GoRecipes: map[string]func() tasks.Recipe{
			"assets": func() tasks.Recipe {
				return NewWith(WithS3Options(f.opts), WithCloudFrontOptions(f.cfOpts), WithInvalidationPoll(50*time.Millisecond))
			},
		},
		Terminal: output.Multi(rec, f.terminal),
		DryRun:   dryRun,
	})
	if err != nil {
		f.t.Fatal(err)
	}
	f.rec.take()
	err = r.Execute(context.Background(), SyncTask)
	var lines []string
	for _, ev := range rec.Of(output.Message) {
		lines = append(lines, ev.Line)
	}
	return f.rec.take(), lines, err
}

func (f *fixture) keys() []string {
	f.t.Helper()
	out, err := f.client.ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: aws.String(testBucket)})
	if err != nil {
		f.t.Fatal(err)
	}
	var keys []string
	for _, o := range out.Contents {
		keys = append(keys, aws.ToString(o.Key))
	}
	return keys
}

func summary(t *testing.T, lines []string) string {
	t.Helper()
	for _, l := range lines {
		if strings.Contains(l, "uploaded") || strings.Contains(l, "would upload") && strings.Contains(l, "unchanged") {
			return l
		}
	}
	t.Fatalf("no summary among %q", lines)
	return ""
}

// The first sync uploads everything, with the headers of its rules; the
// second sends the listing and nothing else; a changed file is the one
// upload of the third.
func TestSyncUploadsOnlyWhatChanged(t *testing.T) {
	f := newFixture(t)
	f.write("index.html", "<h1>hi</h1>")
	f.write("robots.txt", "User-agent: *")
	f.write("assets/app-3f2a.js", "console.log(1)")
	f.write("assets/css/site-99.css", "body{}")
	f.write("js/plain.js", "x()")
	settings := `set("assets_prefix", "static")
set("assets_cache_control", {"default": "max-age=60", "*.js": "max-age=300", "assets/*": "max-age=31536000, immutable"})`

	reqs, lines, err := f.sync(settings, false)
	if err != nil {
		t.Fatal(err)
	}
	p := puts(reqs)
	if len(p) != 5 {
		t.Fatalf("first sync uploaded %d files, want 5: %v", len(p), reqs)
	}
	wantCC := map[string]string{
		"static/index.html":             "max-age=60",
		"static/robots.txt":             "max-age=60",
		"static/assets/app-3f2a.js":     "max-age=31536000, immutable",
		"static/assets/css/site-99.css": "max-age=31536000, immutable",
		"static/js/plain.js":            "max-age=300",
	}
	for key, cc := range wantCC {
		q, ok := p[key]
		if !ok {
			t.Errorf("%s was not uploaded", key)
			continue
		}
		if got := q.header.Get("Cache-Control"); got != cc {
			t.Errorf("%s: Cache-Control %q, want %q", key, got, cc)
		}
		if got := q.header.Get("X-Amz-Acl"); got != "public-read" {
			t.Errorf("%s: ACL %q, want public-read", key, got)
		}
		if q.header.Get("Content-Md5") == "" {
			t.Errorf("%s: no Content-MD5", key)
		}
		if q.header.Get("X-Amz-Meta-Md5") == "" {
			t.Errorf("%s: no md5 metadata", key)
		}
		// The body is signed through Content-MD5, not hashed again.
		if !strings.Contains(q.header.Get("Authorization"), "content-md5;") || q.header.Get("X-Amz-Content-Sha256") != "UNSIGNED-PAYLOAD" {
			t.Errorf("%s: Authorization %q, X-Amz-Content-Sha256 %q; want content-md5 signed, the payload not hashed",
				key, q.header.Get("Authorization"), q.header.Get("X-Amz-Content-Sha256"))
		}
	}
	if got := p["static/index.html"].header.Get("Content-Type"); !strings.HasPrefix(got, "text/html") {
		t.Errorf("index.html Content-Type %q", got)
	}
	if got := p["static/assets/css/site-99.css"].header.Get("Content-Type"); !strings.HasPrefix(got, "text/css") {
		t.Errorf("site.css Content-Type %q", got)
	}
	if s := summary(t, lines); !strings.Contains(s, "uploaded 5") || !strings.Contains(s, "unchanged 0") {
		t.Errorf("summary %q", s)
	}

	reqs, lines, err = f.sync(settings, false)
	if err != nil {
		t.Fatal(err)
	}
	onlyListing(t, reqs)
	if s := summary(t, lines); !strings.Contains(s, "uploaded 0") || !strings.Contains(s, "unchanged 5") {
		t.Errorf("summary %q", s)
	}

	f.write("js/plain.js", "y()")
	reqs, _, err = f.sync(settings, false)
	if err != nil {
		t.Fatal(err)
	}
	if p := puts(reqs); len(p) != 1 || p["static/js/plain.js"].method == "" || count(reqs, http.MethodHead) != 0 {
		t.Errorf("after one change sent %v; want one PUT of static/js/plain.js and no HEAD", reqs)
	}
}

func TestSyncDeleteAndGuard(t *testing.T) {
	f := newFixture(t)
	for _, n := range []string{"a.txt", "b.txt", "c.txt", "d.txt"} {
		f.write(n, n)
	}
	if _, _, err := f.sync("", false); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(f.dir, "public", "d.txt")); err != nil {
		t.Fatal(err)
	}
	// Without assets_delete the stale object stays.
	if _, _, err := f.sync("", false); err != nil {
		t.Fatal(err)
	}
	if k := f.keys(); len(k) != 4 {
		t.Fatalf("keys %v; nothing should be deleted without assets_delete", k)
	}
	reqs, lines, err := f.sync(`set("assets_delete", True)`, false)
	if err != nil {
		t.Fatal(err)
	}
	if k := f.keys(); strings.Join(k, ",") != "a.txt,b.txt,c.txt" {
		t.Errorf("keys after delete %v", k)
	}
	if count(reqs, http.MethodPut) != 0 {
		t.Errorf("delete sync uploaded: %v", reqs)
	}
	if s := summary(t, lines); !strings.Contains(s, "deleted 1") {
		t.Errorf("summary %q", s)
	}

	// A wrong assets_dir would delete all three: refused, nothing sent.
	if err := os.MkdirAll(filepath.Join(f.dir, "elsewhere"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(f.dir, "elsewhere", "x.txt"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	reqs, _, err = f.sync(`set("assets_delete", True)
set("assets_dir", "elsewhere")`, false)
	if err == nil || !strings.Contains(err.Error(), "refusing to delete 3 of the 3 objects") || !strings.Contains(err.Error(), "assets_delete_force") {
		t.Fatalf("err = %v; want the guard's refusal", err)
	}
	if count(reqs, http.MethodPut)+count(reqs, http.MethodPost)+count(reqs, http.MethodDelete) != 0 {
		t.Errorf("refused sync still wrote: %v", reqs)
	}
	if k := f.keys(); len(k) != 3 {
		t.Errorf("keys %v after refusal", k)
	}
	if _, _, err = f.sync(`set("assets_delete", True)
set("assets_delete_force", True)
set("assets_dir", "elsewhere")`, false); err != nil {
		t.Fatal(err)
	}
	if k := f.keys(); strings.Join(k, ",") != "x.txt" {
		t.Errorf("keys after forced delete %v", k)
	}
}

func TestSyncExcludeAndDryRun(t *testing.T) {
	f := newFixture(t)
	f.write("app.js", "a")
	f.write("app.js.map", "m")
	f.write("cache/tmp.bin", "t")
	f.write("keep/cache.txt", "k")
	settings := `set("assets_exclude", ["*.map", "/cache/"])`
	reqs, lines, err := f.sync(settings, true)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range reqs {
		if q.method != http.MethodGet {
			t.Errorf("dry run sent %s %s", q.method, q.path)
		}
	}
	if k := f.keys(); len(k) != 0 {
		t.Errorf("dry run wrote %v", k)
	}
	joined := strings.Join(lines, "\n")
	for _, want := range []string{"would upload app.js", "would upload keep/cache.txt", "would upload 2"} {
		if !strings.Contains(joined, want) {
			t.Errorf("dry run output lacks %q:\n%s", want, joined)
		}
	}
	if _, _, err := f.sync(settings, false); err != nil {
		t.Fatal(err)
	}
	if k := f.keys(); strings.Join(k, ",") != "app.js,keep/cache.txt" {
		t.Errorf("keys %v; excluded files were sent", k)
	}
	// A dry run of a delete lists the deletion and deletes nothing.
	if err := os.Remove(filepath.Join(f.dir, "public", "app.js")); err != nil {
		t.Fatal(err)
	}
	f.write("new.css", "n")
	reqs, lines, err = f.sync(settings+"\nset(\"assets_delete\", True)", true)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range reqs {
		if q.method != http.MethodGet || !strings.Contains(q.query, "list-type=2") {
			t.Errorf("dry run sent %s %s?%s; want the listing only", q.method, q.path, q.query)
		}
	}
	joined = strings.Join(lines, "\n")
	if !strings.Contains(joined, "would delete app.js") || !strings.Contains(joined, "would upload new.css") {
		t.Errorf("dry run output:\n%s", joined)
	}
	if k := f.keys(); strings.Join(k, ",") != "app.js,keep/cache.txt" {
		t.Errorf("keys %v after a dry run", k)
	}
}

func TestSyncErrorsNameTheProblem(t *testing.T) {
	f := newFixture(t)
	f.write("a.txt", "a")
	if _, _, err := f.sync(`set("assets_delete", True)`, false); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, settings, want string
		setup                func()
	}{
		{"missing dir", `set("assets_dir", "nope")`, "assets_dir " + filepath.Join(f.dir, "nope") + " does not exist", nil},
		{"not a directory", `set("assets_dir", "public/a.txt")`, "assets_dir " + filepath.Join(f.dir, "public", "a.txt") + " is not a directory", nil},
		{"no bucket", `set("assets_bucket", "")`, "assets_bucket is not set", nil},
		{"unknown bucket", `set("assets_bucket", "no-such-bucket")`, `bucket "no-such-bucket" does not exist`, nil},
		{"bad acl", `set("assets_acl", "world")`, `assets_acl "world" is not a canned ACL`, nil},
		{"symlink loop", "", "symlink loop: " + filepath.Join(f.dir, "public", "sub", "up"), func() {
			f.write("sub/x.txt", "x")
			if err := os.Symlink("..", filepath.Join(f.dir, "public", "sub", "up")); err != nil {
				t.Fatal(err)
			}
		}},
		{"broken symlink", "", filepath.Join(f.dir, "public", "secret.txt") + " is a broken symlink", func() {
			os.Remove(filepath.Join(f.dir, "public", "sub", "up"))
			if err := os.Symlink(filepath.Join(f.dir, "nothing"), filepath.Join(f.dir, "public", "secret.txt")); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.setup != nil {
				tc.setup()
			}
			reqs, _, err := f.sync(`set("assets_delete", True)`+"\n"+tc.settings, false)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v; want it to say %q", err, tc.want)
			}
			if n := count(reqs, http.MethodPut) + count(reqs, http.MethodPost) + count(reqs, http.MethodDelete); n != 0 {
				t.Errorf("failed sync wrote: %v", reqs)
			}
			if k := f.keys(); strings.Join(k, ",") != "a.txt" {
				t.Errorf("keys %v", k)
			}
		})
	}

	t.Run("no credentials", func(t *testing.T) {
		t.Setenv("AWS_ACCESS_KEY_ID", "")
		t.Setenv("AWS_SECRET_ACCESS_KEY", "")
		os.Remove(filepath.Join(f.dir, "public", "secret.txt"))
		reqs, _, err := f.sync("", false)
		if err == nil || !strings.Contains(err.Error(), "no AWS credentials") {
			t.Fatalf("err = %v", err)
		}
		if len(reqs) != 0 {
			t.Errorf("sent %v without credentials", reqs)
		}
	})

	// The SDK's own warnings (here: the instance metadata service refuses
	// a token, so the credential chain falls back to IMDSv1) reach the
	// task's output, through the redactor, instead of the SDK's stderr.
	t.Run("the SDK's warnings", func(t *testing.T) {
		imds := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPut {
				http.Error(w, "forbidden", http.StatusForbidden)
				return
			}
			http.NotFound(w, r)
		}))
		defer imds.Close()
		t.Setenv("AWS_ACCESS_KEY_ID", "")
		t.Setenv("AWS_SECRET_ACCESS_KEY", "")
		t.Setenv("AWS_EC2_METADATA_DISABLED", "")
		t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.URL)
		_, msgs, err := f.sync("", false)
		if err == nil || !strings.Contains(err.Error(), "no AWS credentials") {
			t.Fatalf("err = %v", err)
		}
		if !slices.ContainsFunc(msgs, func(m string) bool { return strings.Contains(m, "AWS SDK warn: falling back to IMDSv1") }) {
			t.Errorf("the SDK's warning is not in the task's output: %q", msgs)
		}
	})
}

func TestCacheRulesLongestGlobWins(t *testing.T) {
	cr, err := parseCacheRules(map[string]any{"default": "d", "*.js": "js", "assets/*": "long", "assets/vendor/*.js": "vendor"})
	if err != nil {
		t.Fatal(err)
	}
	for rel, want := range map[string]string{
		"a.html": "d", "x/y.js": "js", "assets/a.js": "long", "assets/deep/b.css": "long", "assets/vendor/v.js": "vendor",
	} {
		if got := cr.forPath(rel); got != want {
			t.Errorf("forPath(%q) = %q, want %q", rel, got, want)
		}
	}
	if _, err := parseCacheRules(map[string]any{"[a": "x"}); err == nil {
		t.Error("a bad glob was accepted")
	}
	if _, err := parseCacheRules(3); err == nil {
		t.Error("a number was accepted")
	}
}

// A file that cannot be read (here: gone between the walk and the read,
// which root cannot be kept from reading otherwise) is named, and hashing
// stops before anything is sent.
func TestUnreadableFileIsNamed(t *testing.T) {
	dir := t.TempDir()
	ok := filepath.Join(dir, "ok.txt")
	if err := os.WriteFile(ok, []byte("ok"), 0o644); err != nil {
		t.Fatal(err)
	}
	gone := filepath.Join(dir, "gone.txt")
	files := []localFile{{rel: "ok.txt", abs: ok, size: 2}, {rel: "gone.txt", abs: gone, size: 1}}
	_, err := hashFiles(context.Background(), files, 4, defaultMultipart, openHashCache(dir))
	if err == nil || !strings.Contains(err.Error(), "cannot read "+gone) {
		t.Fatalf("err = %v; want it to name %s", err, gone)
	}
}

// The listing by "directory" finds every key under the prefix, however
// deep or oddly named, and none outside it.
func TestListRemoteFindsEveryKey(t *testing.T) {
	f := newFixture(t)
	keys := []string{"static/a.txt", "static/d/b.txt", "static/d/e/f/g.txt", "static/x//y.txt", "static/z/", "staticfile", "other/c.txt"}
	for _, k := range keys {
		if _, err := f.client.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(testBucket), Key: aws.String(k), Body: strings.NewReader(k)}); err != nil {
			t.Fatal(err)
		}
	}
	client := s3.New(s3.Options{Region: "us-east-1", Credentials: aws.AnonymousCredentials{}}, f.opts)
	// Guessed directories (the local tree's) that the bucket has, that it
	// lacks, and none: each way, every key once.
	for _, c := range []struct {
		prefix  string
		guesses []string
		want    string
	}{
		{"static/", nil, "static/a.txt,static/d/b.txt,static/d/e/f/g.txt,static/x//y.txt,static/z/"},
		{"static/", []string{"d", "missing", "d"}, "static/a.txt,static/d/b.txt,static/d/e/f/g.txt,static/x//y.txt,static/z/"},
		{"", nil, "other/c.txt,static/a.txt,static/d/b.txt,static/d/e/f/g.txt,static/x//y.txt,static/z/,staticfile"},
		{"", []string{"static", "other", "new"}, "other/c.txt,static/a.txt,static/d/b.txt,static/d/e/f/g.txt,static/x//y.txt,static/z/,staticfile"},
	} {
		prefix, want := c.prefix, c.want
		got, err := listRemote(context.Background(), client, testBucket, prefix, c.guesses, 3)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for k, o := range got {
			names = append(names, k)
			if o.size != int64(len(k)) || !isMD5(o.etag) {
				t.Errorf("%s: size %d etag %q", k, o.size, o.etag)
			}
		}
		sort.Strings(names)
		if strings.Join(names, ",") != want {
			t.Errorf("prefix %q, guesses %q: listed %v, want %s", prefix, c.guesses, names, want)
		}
	}
}
