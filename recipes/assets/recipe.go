package assets

import (
	"time"

	"github.com/aws/aws-sdk-go-v2/service/cloudfront"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/davit-deploy/davit/tasks"
)

// SyncTask is the recipe's task.
const SyncTask = "assets:sync"

// Variable defaults, documented in the package comment.
const (
	defaultDir      = "public"
	defaultACL      = "public-read"
	defaultParallel = 16
	// defaultMultipart is the AWS CLI's threshold and part size.
	defaultMultipart = 8 << 20
	// defaultMaxPaths: an invalidation of more paths is sent as "/*"
	// (CloudFront bills per path; a wildcard is one).
	defaultMaxPaths = 100
	// defaultPoll is how often a wait asks CloudFront whether the
	// invalidation completed (one usually takes a minute or more).
	defaultPoll = 5 * time.Second
)

// recipePos is where the recipe's defaults come from, as messages show it.
var recipePos = tasks.Position{File: "recipes/assets"}

// Recipe is the assets recipe. It keeps no run state: each assets:sync
// reads its variables and makes its own client.
type Recipe struct {
	// s3Options adjust the S3 client after the environment configured it
	// (tests point it at a loopback server with path-style addressing and
	// a recording transport).
	s3Options []func(*s3.Options)
	// cfOptions adjust the CloudFront client likewise.
	cfOptions []func(*cloudfront.Options)
	// poll is the interval of the wait for an invalidation; 0 is defaultPoll.
	poll time.Duration
}

// Option configures a Recipe made by NewWith.
type Option func(*Recipe)

// WithS3Options adds functions that adjust the S3 client's options.
func WithS3Options(fns ...func(*s3.Options)) Option {
	return func(r *Recipe) { r.s3Options = append(r.s3Options, fns...) }
}

// WithCloudFrontOptions adds functions that adjust the CloudFront client's
// options.
func WithCloudFrontOptions(fns ...func(*cloudfront.Options)) Option {
	return func(r *Recipe) { r.cfOptions = append(r.cfOptions, fns...) }
}

// WithInvalidationPoll sets how often a wait asks whether the invalidation
// completed (tests shorten it).
func WithInvalidationPoll(d time.Duration) Option {
	return func(r *Recipe) { r.poll = d }
}

// New returns the assets recipe, for use("assets").
func New() tasks.Recipe { return NewWith() }

// NewWith returns the assets recipe with options.
func NewWith(opts ...Option) tasks.Recipe {
	r := &Recipe{}
	for _, o := range opts {
		o(r)
	}
	return r
}

// SetDefaults gives every variable the task reads a default, so -T and
// fetch() work before anything is set and a Deployfile's set() wins.
func (r *Recipe) SetDefaults(v *tasks.Vars) {
	def := func(name string, value any) { v.SetDefault(name, value, recipePos) }
	def("assets_dir", defaultDir)
	def("assets_bucket", "")
	def("assets_prefix", "")
	def("assets_acl", defaultACL)
	def("assets_cache_control", "")
	def("assets_exclude", []any{})
	def("assets_delete", false)
	def("assets_delete_force", false)
	def("assets_parallel", defaultParallel)
	def("assets_multipart_threshold", defaultMultipart)
	def("assets_distribution", "")
	def("assets_invalidate_max_paths", defaultMaxPaths)
	def("assets_invalidation_wait", 0)
}

// DefineTasks adds assets:sync. Its body talks to S3 from the control
// machine and runs nothing on hosts, so it runs once however many hosts
// the stage has.
func (r *Recipe) DefineTasks(reg *tasks.Registry) error {
	return reg.Define(&tasks.Task{
		Name: SyncTask,
		Desc: "Upload the changed files of assets_dir to the S3 bucket assets_bucket (once, from this machine)",
		Pos:  recipePos,
		Run:  r.sync,
	})
}

// RegisterHooks wires nothing: where the sync belongs in a deploy is the
// Deployfile's choice (after("deploy:updated", "assets:sync"), say).
func (r *Recipe) RegisterHooks(*tasks.Registry) error { return nil }
