package cli

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/davit-deploy/davit/recipes"
	"github.com/davit-deploy/davit/tasks/run"
)

// TestReadmeDeployfileSnippets loads every Deployfile snippet of the
// README (its ```python blocks) and selects each stage it declares, so the
// README never shows a Deployfile that fails against this davit: a
// fragment meant for a task body is shown inside a task.
func TestReadmeDeployfileSnippets(t *testing.T) {
	data, err := os.ReadFile("../../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```python\n(.*?)```").FindAllStringSubmatch(string(data), -1)
	if len(blocks) < 10 {
		t.Fatalf("found %d python blocks in the README; the pattern is wrong", len(blocks))
	}
	for i, b := range blocks {
		src := b[1]
		line := 1 + strings.Count(string(data[:strings.Index(string(data), b[0])]), "\n")
		t.Run("line"+strconv.Itoa(line), func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "Deployfile")
			if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
				t.Fatal(err)
			}
			// The load() example loads a file of the project's own.
			os.MkdirAll(filepath.Join(dir, "lib"), 0o755)
			os.WriteFile(filepath.Join(dir, "lib", "tasks.star"), []byte("def migrate(ctx):\n    pass\ndef say(ctx):\n    pass\n"), 0o644)
			ctx := context.Background()
			cfg := run.Config{Deployfile: path, Version: Version, Recipes: recipes.Starlark(), GoRecipes: recipes.Go(),
				Getenv: func(string) (string, bool) { return "from-env", true }}
			r, err := run.Load(ctx, cfg)
			if err != nil {
				t.Fatalf("README snippet %d (line %d) does not load:\n%s\n%v", i, line, src, err)
			}
			for _, s := range r.Project().Stages() {
				r, _ := run.Load(ctx, cfg)
				if err := r.UseStage(ctx, s); err != nil {
					t.Errorf("README snippet %d (line %d), stage %s: %v", i, line, s, err)
				}
			}
		})
	}
}
