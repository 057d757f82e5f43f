package output

import (
	"strconv"
	"strings"
	"time"
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
