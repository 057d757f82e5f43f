package output

import (
	"os"

	"github.com/mattn/go-isatty"
)

// ColorEnabled reports whether output written to f may carry ANSI colours:
// only when f is a terminal (a pipe or file would keep the escape codes),
// NO_COLOR is unset or empty (https://no-color.org), and TERM is not "dumb".
func ColorEnabled(f *os.File) bool {
	if f == nil {
		return false
	}
	fd := f.Fd()
	return colorAllowed(os.Getenv) && (isatty.IsTerminal(fd) || isatty.IsCygwinTerminal(fd))
}

// colorAllowed is the environment half of ColorEnabled.
func colorAllowed(getenv func(string) string) bool {
	return getenv("NO_COLOR") == "" && getenv("TERM") != "dumb"
}

const (
	ansiReset  = "\x1b[0m"
	ansiBold   = "\x1b[1m"
	ansiDim    = "\x1b[2m"
	ansiRed    = "\x1b[31m"
	ansiGreen  = "\x1b[32m"
	ansiYellow = "\x1b[33m"
	ansiBlue   = "\x1b[34m"
	ansiCyan   = "\x1b[36m"
)
