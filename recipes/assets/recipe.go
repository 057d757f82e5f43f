package assets

import (
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
)

// Recipe is the assets recipe. It keeps no run state: each assets:sync
// reads its variables and makes its own client.
type Recipe struct {
	// s3Options adjust the S3 client after the environment configured it
	// (tests point it at a loopback server with path-style addressing and
	// a recording transport).
	s3Options []func(*s3.Options)
}

// Option configures a Recipe made by NewWith.
type Option func(*Recipe)

// WithS3Options adds functions that adjust the S3 client's options.
func WithS3Options(fns ...func(*s3.Options)) Option {
	return func(r *Recipe) { r.s3Options = append(r.s3Options, fns...) }
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
	pos := tasks.Position{File: "recipes/assets"}
	def := func(name string, value any) { v.SetDefault(name, value, pos) }
	def("assets_dir", defaultDir)
	def("assets_bucket", "")
	def("assets_prefix", "")
	def("assets_acl", defaultACL)
	def("assets_cache_control", "")
	def("assets_exclude", []any{})
	def("assets_delete", false)
	def("assets_delete_force", false)
	def("assets_parallel", defaultParallel)
}

// DefineTasks adds assets:sync. Its body talks to S3 from the control
// machine and runs nothing on hosts, so it runs once however many hosts
// the stage has.
func (r *Recipe) DefineTasks(reg *tasks.Registry) error {
	return reg.Define(&tasks.Task{
		Name: SyncTask,
		Desc: "Upload the changed files of assets_dir to the S3 bucket assets_bucket (once, from this machine)",
		Pos:  tasks.Position{File: "recipes/assets"},
		Run:  r.sync,
	})
}

// RegisterHooks wires nothing: where the sync belongs in a deploy is the
// Deployfile's choice (after("deploy:updated", "assets:sync"), say).
func (r *Recipe) RegisterHooks(*tasks.Registry) error { return nil }
