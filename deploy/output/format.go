package output

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// eventTime is when e happened: its own time, or now for emitters that
// left it zero, so every formatter shows the same kind of value.
func eventTime(e Event) time.Time {
	if e.Time.IsZero() {
		return time.Now()
	}
	return e.Time
}

// fmtDuration rounds a duration to what a person wants to read: whole
// milliseconds under a second, hundredths of a second under a minute, whole
// seconds above.
func fmtDuration(d time.Duration) string {
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(10 * time.Millisecond).String()
	default:
		return d.Round(time.Second).String()
	}
}

// failed reports whether a CommandEnd event describes a failure: an error
// kept the command from finishing, or it exited non-zero.
func failed(e Event) bool {
	return e.Error != "" || (!e.Test && e.ExitStatus != nil && *e.ExitStatus != 0)
}

// answeredNo reports a test command that ran and said no (non-zero exit).
func answeredNo(e Event) bool {
	return e.Test && e.Error == "" && e.ExitStatus != nil && *e.ExitStatus != 0
}

// endDetail is the parenthesised part of a command's end line: duration,
// then the exit status when it failed with one, then the error.
func endDetail(e Event) string {
	parts := []string{fmtDuration(e.Duration)}
	if e.ExitStatus != nil && *e.ExitStatus != 0 && *e.ExitStatus != -1 {
		parts = append(parts, "exit "+strconv.Itoa(*e.ExitStatus))
	}
	if e.Error != "" {
		parts = append(parts, oneLine(e.Error))
	}
	return strings.Join(parts, ", ")
}

// oneLine keeps a value that belongs on one line of output there: a
// multi-line command or error would otherwise break the one-event-per-line
// shape that plain output and the run log promise to grep.
func oneLine(s string) string {
	if !strings.ContainsAny(s, "\r\n") {
		return s
	}
	return strings.NewReplacer("\r", `\r`, "\n", `\n`).Replace(s)
}

// messageLines splits a message into lines, so each printed line carries
// the host and level prefix.
func messageLines(s string) []string {
	return strings.Split(strings.TrimSuffix(strings.ReplaceAll(s, "\r\n", "\n"), "\n"), "\n")
}

func level(e Event) string {
	if e.Level == "" {
		return "info"
	}
	return e.Level
}

// hostTable gathers HostInfo events and renders them as one aligned table,
// for the text formats: a table is only readable once every row is known.
type hostTable struct {
	task string // the task of the rows, whose header goes above them
	rows []*Server
}

func (t *hostTable) add(e Event) {
	if e.Server != nil {
		if len(t.rows) == 0 {
			t.task = e.Task
		}
		t.rows = append(t.rows, e.Server)
	}
}

// flush renders the rows gathered so far (nothing when there are none)
// and forgets them.
func (t *hostTable) flush() string {
	if len(t.rows) == 0 {
		return ""
	}
	table := [][]string{{"HOST", "ADDRESS", "USER", "ROLES", "SOURCE", "PROPERTIES"}}
	for _, s := range t.rows {
		name := s.Name
		if s.Port != 0 {
			name += ":" + strconv.Itoa(s.Port)
		}
		roles := strings.Join(s.Roles, ",")
		if s.Primary {
			roles += " (primary)"
		}
		table = append(table, []string{name, dash(s.Address), dash(s.User), dash(roles), dash(s.Source), dash(props(s.Props))})
	}
	t.rows = nil
	return renderTable(table)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// props renders properties as k=v words in key order.
func props(m map[string]any) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var words []string
	for _, k := range keys {
		words = append(words, fmt.Sprintf("%s=%v", k, m[k]))
	}
	return strings.Join(words, " ")
}

// renderTable pads every column but the last to its widest cell.
func renderTable(rows [][]string) string {
	var widths []int
	for _, r := range rows {
		for i, c := range r {
			if i >= len(widths) {
				widths = append(widths, 0)
			}
			widths[i] = max(widths[i], utf8.RuneCountInString(c))
		}
	}
	var b strings.Builder
	for _, r := range rows {
		for i, c := range r {
			if i == len(r)-1 {
				b.WriteString(oneLine(c))
				break
			}
			b.WriteString(oneLine(c) + strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c)+2))
		}
		b.WriteString("\n")
	}
	return b.String()
}

// String is the table with its columns aligned, a line per row after the
// header, as the text formats print it; nil is "".
func (t *Table) String() string { return t.render() }

// render aligns the table's columns; nil renders nothing.
func (t *Table) render() string {
	if t == nil {
		return ""
	}
	return renderTable(append([][]string{t.Columns}, t.Rows...))
}
