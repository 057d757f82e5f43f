package output

import (
	"cmp"
	"slices"
	"strings"
	"sync"
)

// Redacted replaces a secret value in everything a run shows or logs.
const Redacted = "[REDACTED]"

// NewRedactor returns a sink that replaces every occurrence of each secret
// in an event's Command, Label, Line and Error with [REDACTED] before passing it
// to next. Put it in front of everything (terminal format and run log):
//
//	sink := output.NewRedactor(output.Multi(pretty, log), vars.Secrets)
//
// secrets is called for every event, because values join mid-run (a
// password typed at an ask prompt). It must be safe for concurrent use;
// returning the same values in the same order lets the redactor reuse its
// prepared set without sorting. Empty values are ignored.
//
// Overlapping secrets never leak a part: every byte covered by any
// occurrence of any secret is hidden, and a run of overlapping occurrences
// becomes a single [REDACTED]. (A strings.Replacer would replace "xpa" in
// "xpassword" and show "ssword" of the secret "password".) Redaction is per
// field, so a secret split across two output lines is not found.
func NewRedactor(next Sink, secrets func() []string) Sink {
	if secrets == nil {
		return next
	}
	return &redactor{next: next, secrets: secrets}
}

type redactor struct {
	next    Sink
	secrets func() []string

	mu   sync.Mutex
	last []string   // what secrets() returned when set was built
	set  *secretSet // immutable once built; shared by concurrent Emits
}

// secretSet is a prepared list of secrets: unique, non-empty, longest
// first (so that the common case, one secret inside another, is found
// with its longest match first and merging has little to do).
type secretSet struct {
	values []string
}

func (r *redactor) Emit(e Event) {
	if set := r.current(); len(set.values) > 0 {
		e.Command = set.redact(e.Command)
		e.Label = set.redact(e.Label)
		e.Line = set.redact(e.Line)
		e.Error = set.redact(e.Error)
		if e.Server != nil {
			e.Server = set.redactServer(e.Server)
		}
		if e.Table != nil {
			t := &Table{Columns: e.Table.Columns}
			for _, r := range e.Table.Rows {
				row := make([]string, len(r))
				for i, c := range r {
					row[i] = set.redact(c)
				}
				t.Rows = append(t.Rows, row)
			}
			e.Table = t
		}
	}
	r.next.Emit(e)
}

// current returns the prepared set for the secrets as they are now,
// rebuilding it only when they changed.
func (r *redactor) current() *secretSet {
	raw := r.secrets()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.set == nil || !slices.Equal(raw, r.last) {
		r.set = newSecretSet(raw)
		r.last = slices.Clone(raw)
	}
	return r.set
}

func newSecretSet(raw []string) *secretSet {
	var values []string
	for _, s := range raw {
		if s != "" {
			values = append(values, s)
		}
	}
	slices.SortFunc(values, func(a, b string) int {
		return cmp.Or(cmp.Compare(len(b), len(a)), strings.Compare(a, b))
	})
	return &secretSet{values: slices.Compact(values)}
}

// redact hides every byte of s that belongs to an occurrence of a secret.
func (set *secretSet) redact(s string) string {
	if s == "" {
		return s
	}
	type span struct{ start, end int }
	var spans []span
	for _, v := range set.values {
		// Step one byte past each match start, so overlapping occurrences
		// of the same value ("aa" in "aaa") are all covered.
		for i := 0; i <= len(s)-len(v); {
			j := strings.Index(s[i:], v)
			if j < 0 {
				break
			}
			spans = append(spans, span{i + j, i + j + len(v)})
			i += j + 1
		}
	}
	if len(spans) == 0 {
		return s
	}
	slices.SortFunc(spans, func(a, b span) int { return cmp.Compare(a.start, b.start) })
	var b strings.Builder
	pos := 0 // end of what has been written or hidden so far
	for i := 0; i < len(spans); {
		start, end := spans[i].start, spans[i].end
		for i++; i < len(spans) && spans[i].start < end; i++ {
			end = max(end, spans[i].end)
		}
		b.WriteString(s[pos:start])
		b.WriteString(Redacted)
		pos = end
	}
	b.WriteString(s[pos:])
	return b.String()
}

// RedactString hides every occurrence of each secret in s, as the redactor
// does in events: for text that leaves davit by another way (the CLI's
// closing error).
func RedactString(s string, secrets []string) string {
	return newSecretSet(secrets).redact(s)
}

// RedactedError is an error whose text went through the redactor: what
// davit prints of an error may quote a command, its stderr or a value.
// errors.Is and errors.As still see the original chain, so the exit
// code is decided as before.
type RedactedError struct {
	Msg string // redacted
	Err error
}

func (e *RedactedError) Error() string { return e.Msg }
func (e *RedactedError) Unwrap() error { return e.Err }

// RedactError hides every occurrence of each secret in err's text; nil
// stays nil.
func RedactError(err error, secrets []string) error {
	if err == nil {
		return nil
	}
	return &RedactedError{Msg: RedactString(err.Error(), secrets), Err: err}
}

// redactServer hides secrets in a host description's strings, on a copy:
// the event's Server may be shared with other sinks.
func (set *secretSet) redactServer(s *Server) *Server {
	c := *s
	c.Name, c.Address, c.User = set.redact(s.Name), set.redact(s.Address), set.redact(s.User)
	if len(s.Props) > 0 {
		c.Props = make(map[string]any, len(s.Props))
		for k, v := range s.Props {
			if str, ok := v.(string); ok {
				v = set.redact(str)
			}
			c.Props[k] = v
		}
	}
	return &c
}
