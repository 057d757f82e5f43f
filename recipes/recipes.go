// Package recipes holds the recipes built into the davit binary. Recipes
// written in the Deployfile language (*.star) are embedded here and loaded
// from a Deployfile as load("davit/NAME.star", ...); recipes written in Go
// live in subpackages and register tasks through the same task DSL.
package recipes

import (
	"embed"
	"io/fs"
)

//go:embed *.star
var starFiles embed.FS

// Starlark returns the embedded Deployfile-language recipes, addressed by
// file name (the "davit/" prefix of a load is stripped by the loader).
func Starlark() fs.FS { return starFiles }
