package output

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/davit-deploy/davit/deploy"
)

// logTime is the run log's timestamp: UTC with fixed-width microseconds, so
// columns line up and lines sort as text.
const logTime = "2006-01-02T15:04:05.000000Z07:00"

// Log is the run log every run appends to, whatever the terminal format:
// when a deploy goes wrong, the full story (every command, every output
// line, exit statuses and timings) is on disk even if the screen showed
// only a summary. One line per event:
//
//	=== run 2026-11-29T02:23:00.000000Z pid 4242: davit production deploy
//	2026-11-29T02:23:00.100000Z [deploy:check] task started
//	2026-11-29T02:23:00.110000Z [deploy:check] web1 #3 $ mkdir -p /x
//	2026-11-29T02:23:00.111000Z [deploy:check] web1 #4 (check the layout) $ for d in /srv; do [ -w "$d" ] || echo "problem: $d"; done
//	2026-11-29T02:23:00.115000Z [deploy:check] web1 #3 1> some output
//	2026-11-29T02:23:00.116000Z [deploy:check] web1 #3 2> a warning
//	2026-11-29T02:23:00.122000Z [deploy:check] web1 #3 exit 0 in 12ms: mkdir -p /x
//	2026-11-29T02:23:00.130000Z [deploy:check] web1 warn: disk almost full
//	2026-11-29T02:23:01.300000Z [deploy:check] task done in 1.2s
//
// Each event is one write to a file opened with O_APPEND, so a line is
// never torn, and nothing is lost in a buffer if davit dies.
type Log struct {
	path string

	mu     sync.Mutex
	f      *os.File
	err    error
	closed bool
}

// NewLog opens (creating it and its directories) the log at path for
// appending and writes a header line with the time and the command line
// argv, which tells runs apart. The file is private to the user (0600):
// output can hold values no one registered as secret.
func NewLog(path string, argv ...string) (*Log, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("run log: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("run log: %w", err)
	}
	words := make([]string, len(argv))
	for i, a := range argv {
		words[i] = deploy.Quote(a)
	}
	header := fmt.Sprintf("=== run %s pid %d: %s\n", time.Now().UTC().Format(logTime), os.Getpid(), oneLine(strings.Join(words, " ")))
	if _, err := f.WriteString(header); err != nil {
		f.Close()
		return nil, fmt.Errorf("run log: %w", err)
	}
	return &Log{path: path, f: f}, nil
}

// Path is the file the log writes to, for telling the user where to look.
func (l *Log) Path() string { return l.path }

// Emit implements Sink. Events after Close are dropped. A write error is
// kept and returned by Close: the run goes on without its log rather than
// failing a deploy half-way.
func (l *Log) Emit(e Event) {
	var b strings.Builder
	b.WriteString(eventTime(e).UTC().Format(logTime))
	if e.Task != "" {
		b.WriteString(" [" + e.Task + "]")
	}
	if e.Host != "" {
		b.WriteString(" " + e.Host)
	}
	if e.ID != 0 {
		b.WriteString(" #" + strconv.FormatUint(e.ID, 10))
	}
	switch e.Kind {
	case TaskStart:
		b.WriteString(" task started")
	case TaskEnd:
		if e.Error != "" {
			b.WriteString(" task failed after " + fmtDuration(e.Duration) + ": " + oneLine(e.Error))
		} else {
			b.WriteString(" task done in " + fmtDuration(e.Duration))
		}
	case CommandStart:
		if e.Label != "" {
			b.WriteString(" (" + oneLine(e.Label) + ")")
		}
		b.WriteString(" $ " + oneLine(e.Command))
	case Output:
		if e.Stream == Stderr {
			b.WriteString(" 2> ")
		} else {
			b.WriteString(" 1> ")
		}
		b.WriteString(oneLine(e.Line))
	case CommandEnd:
		status := "?"
		if e.ExitStatus != nil {
			status = strconv.Itoa(*e.ExitStatus)
		}
		b.WriteString(" exit " + status + " in " + fmtDuration(e.Duration))
		if e.Error != "" {
			b.WriteString(" error " + oneLine(e.Error))
		}
		b.WriteString(": " + oneLine(e.Command))
	case Message:
		b.WriteString(" " + level(e) + ": " + oneLine(e.Line))
	case TableKind:
		if t := e.Table; t != nil {
			b.WriteString(" table " + strings.Join(t.Columns, " | "))
			for _, r := range t.Rows {
				b.WriteString("\n" + eventTime(e).UTC().Format(logTime) + " [" + e.Task + "]   " + oneLine(strings.Join(r, " | ")))
			}
		}
	case HostInfo:
		if s := e.Server; s != nil {
			fmt.Fprintf(&b, " host %s address=%s user=%s port=%d roles=%s primary=%t source=%s %s",
				s.Name, s.Address, s.User, s.Port, strings.Join(s.Roles, ","), s.Primary, s.Source, props(s.Props))
		}
	default:
		fmt.Fprintf(&b, " %s %q", e.Kind, e.Line)
	}
	b.WriteString("\n")

	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	if _, err := l.f.WriteString(b.String()); err != nil && l.err == nil {
		l.err = err
	}
}

// Close closes the file and reports the first write error. Calling it
// again does nothing.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	err := errors.Join(l.err, l.f.Close())
	if err != nil {
		return fmt.Errorf("run log %s: %w", l.path, err)
	}
	return nil
}
