package assets

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/logging"

	"github.com/davit-deploy/davit/deploy/output"
	"github.com/davit-deploy/davit/recipes/internal/sdklog"
	"github.com/davit-deploy/davit/tasks"
)

// fallbackRegion is the region when the environment names none; S3
// answers a request for a bucket elsewhere with a redirect error naming
// the bucket's region.
const fallbackRegion = "us-east-1"

// deleteBatch is the most keys one DeleteObjects request takes.
const deleteBatch = 1000

// remoteObject is one object of the listing.
type remoteObject struct {
	size int64
	etag string // without quotes
}

// plan is what a sync does.
type plan struct {
	upload    []localFile
	reasons   map[string]string // rel -> why it is uploaded
	unchanged int
	delete    []string // keys
	listed    int      // objects under the prefix
}

func (r *Recipe) sync(c *tasks.Context) error {
	start := time.Now()
	s, err := readSettings(c.Executor.Vars, c.Executor.LocalDir, true)
	if err != nil {
		return fmt.Errorf("%s: %w", SyncTask, err)
	}
	where := "s3://" + s.bucket + "/" + s.prefix
	cfg, err := r.awsConfig(c.Ctx(), sdklog.To(c.Warn))
	if err != nil {
		return fmt.Errorf("%s: %w", SyncTask, err)
	}
	client := r.s3Client(cfg, s)
	// The listing (S3's time) and the walk and hashing (the disk's and
	// the CPU's) overlap: an unchanged tree costs the longer of the two.
	// A local error wins, and the listing is stopped and waited for, so
	// nothing is still sent once the task returned.
	listCtx, stopListing := context.WithCancel(c.Ctx())
	var (
		remote  map[string]remoteObject
		listErr error
		listed  = make(chan struct{})
	)
	go func() {
		defer close(listed)
		remote, listErr = listRemote(listCtx, client, s.bucket, s.prefix, topDirs(s.dir), s.parallel)
	}()
	defer func() { stopListing(); <-listed }()
	cacheLoaded := make(chan *hashCache, 1)
	go func() { cacheLoaded <- openHashCache(s.dir) }()
	files, skipped, err := walkDir(s.dir, s.exclude, s.parallel)
	cache := <-cacheLoaded
	if err != nil {
		return fmt.Errorf("%s: %w", SyncTask, err)
	}
	for _, sk := range skipped {
		c.Warn(fmt.Sprintf("%s: skipping %s: not a regular file", SyncTask, sk))
	}
	if _, err := hashFiles(c.Ctx(), files, s.parallel, s.multipart, cache); err != nil {
		return fmt.Errorf("%s: %w", SyncTask, err)
	}
	if !c.DryRun() {
		if err := cache.save(s.dir); err != nil {
			c.Warn(fmt.Sprintf("%s: %v (the next sync reads every file again)", SyncTask, err))
		}
	}
	<-listed
	if listErr != nil {
		return fmt.Errorf("%s: %w", SyncTask, listErr)
	}
	p, err := makePlan(c.Ctx(), client, s, files, remote)
	if err != nil {
		return fmt.Errorf("%s: %w", SyncTask, err)
	}
	// The guard is checked before anything is sent: a wrong assets_dir
	// should neither empty the bucket nor fill it with the wrong files.
	if len(p.delete) > 0 && 2*len(p.delete) > p.listed && !s.deleteForce {
		return fmt.Errorf("%s: refusing to delete %d of the %d objects under %s (more than half; is assets_dir %s right?); set assets_delete_force=true to allow it",
			SyncTask, len(p.delete), p.listed, where, s.dir)
	}
	var bytes int64
	for _, f := range p.upload {
		bytes += f.size
	}
	inv := invalidationPaths(s, p)
	if c.DryRun() {
		for _, f := range p.upload {
			c.Info(fmt.Sprintf("%s: dry run: would upload %s (%d bytes, %s)", SyncTask, s.prefix+f.rel, f.size, p.reasons[f.rel]))
		}
		for _, k := range p.delete {
			c.Info(fmt.Sprintf("%s: dry run: would delete %s", SyncTask, k))
		}
		if len(inv) > 0 {
			c.Info(fmt.Sprintf("%s: dry run: would invalidate on CloudFront distribution %s: %s", SyncTask, s.distribution, describePaths(inv)))
		}
		c.Info(fmt.Sprintf("%s: dry run: %s: would upload %d (%d bytes), unchanged %d, would delete %d, in %s",
			SyncTask, where, len(p.upload), bytes, p.unchanged, len(p.delete), time.Since(start).Round(time.Millisecond)))
		return nil
	}
	var sent atomic.Int64
	up := newUploader(client, s)
	bar := newProgress(output.LiveWriter(c.Executor.Sink), len(p.upload), bytes)
	err = forEach(c.Ctx(), len(p.upload), s.parallel, func(ctx context.Context, i int) error {
		f := p.upload[i]
		if err := up.upload(ctx, f); err != nil {
			return err
		}
		sent.Add(f.size)
		bar.fileDone(f.size)
		return nil
	})
	bar.finish()
	if err != nil {
		return fmt.Errorf("%s: %w (nothing was deleted)", SyncTask, err)
	}
	if err := deleteKeys(c.Ctx(), client, s.bucket, p.delete); err != nil {
		return fmt.Errorf("%s: %w", SyncTask, err)
	}
	invalidated := ""
	if len(inv) > 0 {
		id, err := r.invalidate(c, cfg, s, inv)
		if err != nil {
			return fmt.Errorf("%s: uploaded %d and deleted %d, but %w", SyncTask, len(p.upload), len(p.delete), err)
		}
		invalidated = fmt.Sprintf(", invalidation %s of %s", id, describePaths(inv))
	}
	c.Info(fmt.Sprintf("%s: %s: uploaded %d (%d bytes sent), unchanged %d, deleted %d%s, in %s",
		SyncTask, where, len(p.upload), sent.Load(), p.unchanged, len(p.delete), invalidated, time.Since(start).Round(time.Millisecond)))
	return nil
}

// awsConfig loads the configuration from the environment (as the AWS CLI
// does) and fails early, naming the problem, when there are no
// credentials. The SDK's messages go to logger (see package sdklog).
func (r *Recipe) awsConfig(ctx context.Context, logger logging.Logger) (aws.Config, error) {
	cfg, err := config.LoadDefaultConfig(ctx, config.WithLogger(logger))
	if err != nil {
		return cfg, fmt.Errorf("AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		cfg.Region = fallbackRegion
	}
	if cfg.Credentials == nil {
		return cfg, errors.New("no AWS credentials (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE)")
	}
	if _, err := cfg.Credentials.Retrieve(ctx); err != nil {
		return cfg, fmt.Errorf("no AWS credentials (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE): %w", err)
	}
	return cfg, nil
}

// s3Client makes the S3 client. Its connection pool keeps as many idle
// connections as uploads run at once (the SDK's default keeps 10), so
// parallel uploads reuse them rather than open new ones.
func (r *Recipe) s3Client(cfg aws.Config, s settings) *s3.Client {
	opts := append([]func(*s3.Options){func(o *s3.Options) {
		// Content-MD5, which every upload and every part carries, is the
		// integrity check; no second checksum (which S3-compatible stores
		// may not know) unless an operation requires one.
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		// The signature covers Content-MD5 (a header SigV4 always
		// signs), so it covers the body through it; hashing every body
		// again with SHA-256 for the signature would only cost CPU.
		o.APIOptions = append(o.APIOptions, addPartMD5, v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware)
		o.HTTPClient = awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) {
			t.MaxIdleConnsPerHost = s.parallel + 4
		})
	}}, r.s3Options...)
	return s3.NewFromConfig(cfg, opts...)
}

// listRemote lists the objects under prefix. A bucket's pages come one
// after another (each names where the next starts), so one listing of
// 10,000 keys is ten round trips in a row; listRemote splits it by
// "directory" and pages the parts parallel at a time, so a tree is listed
// in about the time of its largest directory. The parts are the listing
// of prefix with a "/" delimiter (the objects directly under it, and its
// directories) and, started at the same time rather than after it, one
// listing per directory in guesses (assets_dir's own top-level
// directories, which the bucket usually mirrors). A directory the
// delimited listing finds that was not guessed (one that only the bucket
// has) is listed once that listing is done. Every key lies in exactly one
// part.
func listRemote(ctx context.Context, client *s3.Client, bucket, prefix string, guesses []string, parallel int) (map[string]remoteObject, error) {
	var mu sync.Mutex
	out := map[string]remoteObject{}
	add := func(objs []types.Object) {
		mu.Lock()
		defer mu.Unlock()
		for _, o := range objs {
			out[aws.ToString(o.Key)] = remoteObject{
				size: aws.ToInt64(o.Size),
				etag: strings.Trim(aws.ToString(o.ETag), `"`),
			}
		}
	}
	listed := map[string]bool{}
	var dirs []string // prefix's directories, as prefixes
	for _, g := range guesses {
		if d := prefix + g + "/"; !listed[d] {
			listed[d] = true
			dirs = append(dirs, d)
		}
	}
	var found []string // the delimited listing's directories
	err := forEach(ctx, 1+len(dirs), parallel, func(ctx context.Context, i int) error {
		if i == 0 {
			return listPages(ctx, client, bucket, prefix, "/", func(page *s3.ListObjectsV2Output) {
				add(page.Contents)
				for _, cp := range page.CommonPrefixes {
					found = append(found, aws.ToString(cp.Prefix))
				}
			})
		}
		return listPages(ctx, client, bucket, dirs[i-1], "", func(page *s3.ListObjectsV2Output) { add(page.Contents) })
	})
	if err != nil {
		return nil, err
	}
	var rest []string
	for _, d := range found {
		if !listed[d] {
			rest = append(rest, d)
		}
	}
	err = forEach(ctx, len(rest), parallel, func(ctx context.Context, i int) error {
		return listPages(ctx, client, bucket, rest[i], "", func(page *s3.ListObjectsV2Output) { add(page.Contents) })
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// topDirs names the directories directly in dir (following symlinks), as
// listRemote's guesses; a directory it cannot read gives none (the walk
// reports why).
func topDirs(dir string) []string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() {
			out = append(out, e.Name())
		} else if e.Type()&fs.ModeSymlink != 0 {
			if info, err := os.Stat(filepath.Join(dir, e.Name())); err == nil && info.IsDir() {
				out = append(out, e.Name())
			}
		}
	}
	return out
}

// listPages calls fn with each page of the listing of prefix.
func listPages(ctx context.Context, client *s3.Client, bucket, prefix, delimiter string, fn func(*s3.ListObjectsV2Output)) error {
	in := &s3.ListObjectsV2Input{Bucket: aws.String(bucket)}
	if prefix != "" {
		in.Prefix = aws.String(prefix)
	}
	if delimiter != "" {
		in.Delimiter = aws.String(delimiter)
	}
	pages := s3.NewListObjectsV2Paginator(client, in)
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return describe(err, "list s3://"+bucket+"/"+prefix, bucket)
		}
		fn(page)
	}
	return nil
}

// describe names an S3 error in the user's words.
func describe(err error, what, bucket string) error {
	var nb *types.NoSuchBucket
	var api smithy.APIError
	switch {
	case errors.As(err, &nb):
		return fmt.Errorf("%s: bucket %q does not exist: %w", what, bucket, err)
	case errors.As(err, &api):
		switch api.ErrorCode() {
		case "NoSuchBucket":
			return fmt.Errorf("%s: bucket %q does not exist: %w", what, bucket, err)
		case "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch":
			return fmt.Errorf("%s: the credentials are refused (%s): %w", what, api.ErrorCode(), err)
		}
	}
	return fmt.Errorf("%s: %w", what, err)
}

// isMD5 reports whether an ETag is a content MD5 (a single-part upload);
// a multipart object's is MD5-of-parts "-" count.
func isMD5(etag string) bool {
	if len(etag) != 32 {
		return false
	}
	_, err := hex.DecodeString(etag)
	return err == nil
}

// makePlan compares the local files with the listing. An object sent in
// one part has its content's MD5 as ETag; one sent in parts has
// "MD5-of-the-parts'-MD5s-N", which davit predicts for its own part size
// while hashing. Only an object of the right size whose ETag is neither
// costs a request (a HEAD for the md5 metadata davit stores); the others
// are decided from the listing alone.
func makePlan(ctx context.Context, client *s3.Client, s settings, files []localFile, remote map[string]remoteObject) (plan, error) {
	p := plan{reasons: map[string]string{}, listed: len(remote)}
	var ask []int // files whose object needs a HEAD
	for i, f := range files {
		o, ok := remote[s.prefix+f.rel]
		switch {
		case !ok:
			p.reasons[f.rel] = reasonNew
		case o.size != f.size:
			p.reasons[f.rel] = "size differs"
		case isMD5(o.etag):
			if !strings.EqualFold(o.etag, f.md5) {
				p.reasons[f.rel] = "content differs"
			}
		case f.partsETag != "" && strings.EqualFold(o.etag, f.partsETag):
			// Uploaded in parts of the threshold's size (by davit, with
			// this threshold): the ETag davit predicts from the local
			// parts' MD5s matches, so the content does.
		default:
			// Some other ETag (parts of another size, another tool):
			// the md5 metadata davit stores decides, at one HEAD.
			ask = append(ask, i)
			continue
		}
		if _, changed := p.reasons[f.rel]; changed {
			p.upload = append(p.upload, f)
		} else {
			p.unchanged++
		}
	}
	differs := make([]bool, len(ask))
	err := forEach(ctx, len(ask), s.parallel, func(ctx context.Context, j int) error {
		f := files[ask[j]]
		h, err := client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(s.prefix + f.rel)})
		if err != nil {
			return describe(err, "head s3://"+s.bucket+"/"+s.prefix+f.rel, s.bucket)
		}
		differs[j] = !strings.EqualFold(h.Metadata["md5"], f.md5)
		return nil
	})
	if err != nil {
		return p, err
	}
	for j, i := range ask {
		if differs[j] {
			p.reasons[files[i].rel] = "content differs (by its md5 metadata)"
			p.upload = append(p.upload, files[i])
		} else {
			p.unchanged++
		}
	}
	sort.Slice(p.upload, func(i, j int) bool { return p.upload[i].rel < p.upload[j].rel })
	if s.delete {
		local := make(map[string]bool, len(files))
		for _, f := range files {
			local[s.prefix+f.rel] = true
		}
		for key := range remote {
			if !local[key] {
				p.delete = append(p.delete, key)
			}
		}
		sort.Strings(p.delete)
	}
	return p, nil
}

// deleteKeys removes keys in batches; a key S3 could not delete is an
// error naming it.
func deleteKeys(ctx context.Context, client *s3.Client, bucket string, keys []string) error {
	for start := 0; start < len(keys); start += deleteBatch {
		batch := keys[start:min(start+deleteBatch, len(keys))]
		ids := make([]types.ObjectIdentifier, len(batch))
		for i, k := range batch {
			ids[i] = types.ObjectIdentifier{Key: aws.String(k)}
		}
		out, err := client.DeleteObjects(ctx, &s3.DeleteObjectsInput{
			Bucket: aws.String(bucket),
			Delete: &types.Delete{Objects: ids, Quiet: aws.Bool(true)},
		})
		if err != nil {
			return describe(err, fmt.Sprintf("delete %d objects from s3://%s", len(batch), bucket), bucket)
		}
		if len(out.Errors) > 0 {
			var msgs []string
			for _, e := range out.Errors {
				msgs = append(msgs, fmt.Sprintf("%s (%s)", aws.ToString(e.Key), aws.ToString(e.Message)))
			}
			return fmt.Errorf("delete from s3://%s: %d objects not deleted: %s", bucket, len(out.Errors), strings.Join(msgs, ", "))
		}
	}
	return nil
}
