// Package recipes holds the recipes built into the davit binary. Recipes
// written in the Deployfile language (*.star) are embedded here and loaded
// from a Deployfile as load("davit/NAME.star", ...); recipes written in Go
// live in subpackages and register tasks through the same task DSL.
package recipes

import (
	"embed"
	"io/fs"

	"github.com/davit-deploy/davit/recipes/assets"
	"github.com/davit-deploy/davit/recipes/aws"
	"github.com/davit-deploy/davit/recipes/capdeploy"
	"github.com/davit-deploy/davit/tasks"
)

//go:embed *.star
var starFiles embed.FS

// Starlark returns the embedded Deployfile-language recipes, addressed by
// file name (the "davit/" prefix of a load is stripped by the loader).
func Starlark() fs.FS { return starFiles }

// Go returns the recipes written in Go, by the name use() takes. Each call
// of a constructor makes a fresh recipe, so every Deployfile loaded gets
// its own run state.
func Go() map[string]func() tasks.Recipe {
	return map[string]func() tasks.Recipe{
		"aws":    aws.New,
		"assets": assets.New,
		"deploy": capdeploy.New,
	}
}
