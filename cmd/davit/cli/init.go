package cli

import (
	_ "embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

//go:embed starter.Deployfile
var starterDeployfile []byte

// initDeployfile writes the starter Deployfile, refusing to replace one.
func initDeployfile(path string, stdout io.Writer) error {
	if path == "" {
		path = "Deployfile"
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, fs.ErrExist) {
		return usageError(fmt.Errorf("init: %s already exists; not overwriting it", path))
	}
	if err != nil {
		return usageError(fmt.Errorf("init: %w", err))
	}
	if _, err := f.Write(starterDeployfile); err != nil {
		f.Close()
		return fmt.Errorf("init: write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("init: write %s: %w", path, err)
	}
	fmt.Fprintf(stdout, "wrote %s; `davit -T` lists its tasks\n", path)
	return nil
}
