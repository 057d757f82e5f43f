package assets

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/davit-deploy/davit/tasks"
	"github.com/davit-deploy/davit/tasks/run"
)

// Every bad assets_* value is reported at once, before anything runs,
// each with where it was set; command-line overrides are read as the task
// reads them.
func TestCheckVarsReportsEveryProblem(t *testing.T) {
	dir := t.TempDir()
	src := `use("assets")
set("assets_bucket", "Not_A_Bucket")
set("assets_acl", "world")
set("assets_parallel", 0)
set("assets_multipart_threshold", 1000)
set("assets_distribution", "e-lowercase")
set("assets_invalidate_max_paths", 0)
set("assets_invalidation_wait", "soon")
set("assets_cache_control", {"[a": "x"})
set("assets_exclude", 3)
`
	df := filepath.Join(dir, "Deployfile")
	if err := os.WriteFile(df, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := run.Load(context.Background(), run.Config{
		Deployfile: df,
		GoRecipes:  map[string]func() tasks.Recipe{"assets": New},
		Overrides:  map[string]string{"assets_delete": "perhaps"},
	})
	if err != nil {
		t.Fatal(err)
	}
	err = r.Check(SyncTask)
	var ve *tasks.VarsError
	if !errors.As(err, &ve) {
		t.Fatalf("err = %v; want a *tasks.VarsError", err)
	}
	want := []string{
		`assets_bucket "Not_A_Bucket" is not an S3 bucket name`,
		`assets_acl "world" is not a canned ACL`,
		`assets_parallel is 0`,
		`assets_multipart_threshold is 1000 bytes`,
		`assets_distribution "e-lowercase" is not a CloudFront distribution id`,
		`assets_invalidate_max_paths is 0`,
		`assets_invalidation_wait "soon"`,
		`assets_cache_control: rule "[a"`,
		`assets_exclude`,
		`assets_delete`,
	}
	if len(ve.Problems) != len(want) {
		t.Errorf("%d problems, want %d:\n%s", len(ve.Problems), len(want), err)
	}
	text := err.Error()
	for _, w := range want {
		if !strings.Contains(text, w) {
			t.Errorf("the report lacks %q:\n%s", w, text)
		}
	}
	if !strings.Contains(text, "(set at ") || !strings.Contains(text, "given on the command line") {
		t.Errorf("the report does not say where values were set:\n%s", text)
	}

	// Good values and an unset bucket (a stage that does not sync) pass.
	if err := os.WriteFile(df, []byte("use(\"assets\")\nset(\"assets_invalidation_wait\", \"5m\")\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err = run.Load(context.Background(), run.Config{Deployfile: df, GoRecipes: map[string]func() tasks.Recipe{"assets": New},
		Overrides: map[string]string{"assets_parallel": "4", "assets_delete": "true"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Check(SyncTask); err != nil {
		t.Errorf("good values refused: %v", err)
	}
}
