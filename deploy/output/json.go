package output

import (
	"bytes"
	"encoding/json"
	"io"
	"sync"
	"time"
)

// JSONOptions tunes the JSON format. The zero value is Normal.
type JSONOptions struct {
	// Verbosity VeryVerbose (-vv) reports davit's own commands whole: their
	// scripts ("command") and their output. Below it, a labelled command
	// carries only its label, and its output events are held and written
	// only if it fails, just before its command_end (with their own
	// times). Quiet is the same as Normal: programs filter for themselves.
	Verbosity Verbosity
}

// JSON writes one JSON object per event and line, for programs that watch
// a run. Output bytes that are not valid UTF-8 are replaced by U+FFFD, so
// every line stays valid JSON whatever a command prints.
//
//	{"event":"command_end","time":"2026-11-29T02:23:00.126Z","task":"deploy:check","host":"web1","id":3,"command":"mkdir -p /x","exit_status":0,"duration_s":0.012}
type JSON struct {
	whole bool // VeryVerbose: every event as it is

	mu   sync.Mutex
	w    io.Writer
	held map[cmdKey][]Event // output of running labelled commands
}

// NewJSON returns the JSON-lines format writing to w, with Normal
// verbosity.
func NewJSON(w io.Writer) *JSON { return NewJSONWith(w, JSONOptions{}) }

// NewJSONWith returns the JSON-lines format writing to w.
func NewJSONWith(w io.Writer, opts JSONOptions) *JSON {
	return &JSON{whole: opts.Verbosity >= VeryVerbose, w: w, held: map[cmdKey][]Event{}}
}

// jsonEvent fixes the wire names independently of Event's Go shape.
type jsonEvent struct {
	Event   Kind   `json:"event"`
	Time    string `json:"time"`
	Task    string `json:"task,omitempty"`
	Host    string `json:"host,omitempty"`
	ID      uint64 `json:"id,omitempty"`
	Command string `json:"command,omitempty"`
	Label   string `json:"label,omitempty"`
	Stream  Stream `json:"stream,omitempty"`
	// Line is a pointer so that an empty output line is still reported.
	Line       *string  `json:"line,omitempty"`
	ExitStatus *int     `json:"exit_status,omitempty"`
	Test       bool     `json:"test,omitempty"`
	DurationS  *float64 `json:"duration_s,omitempty"`
	Error      string   `json:"error,omitempty"`
	Level      string   `json:"level,omitempty"`
	Server     *Server  `json:"server,omitempty"`
	Table      *Table   `json:"table,omitempty"`
}

// Emit implements Sink.
func (j *JSON) Emit(e Event) {
	if j.whole {
		j.write(j.encode(e))
		return
	}
	key := cmdKey{e.Host, e.ID}
	j.mu.Lock()
	defer j.mu.Unlock()
	switch e.Kind {
	case CommandStart:
		if e.Label != "" {
			j.held[key] = []Event{}
		}
	case Output:
		if held, ok := j.held[key]; ok {
			// Bounded as pretty's tail is: the last keepLines lines.
			if len(held) == keepLines {
				held = append(held[:0], held[1:]...)
			}
			j.held[key] = append(held, e)
			return
		}
	case CommandEnd:
		held, ok := j.held[key]
		delete(j.held, key)
		if ok && failed(e) {
			for _, h := range held {
				j.w.Write(j.encode(h))
			}
		}
	}
	if e.Label != "" {
		// The script is davit's own machinery: the label names it.
		e.Command = ""
	}
	j.w.Write(j.encode(e))
}

func (j *JSON) write(b []byte) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.w.Write(b)
}

// encode is one event's line.
func (j *JSON) encode(e Event) []byte {
	je := jsonEvent{
		Event:      e.Kind,
		Time:       eventTime(e).UTC().Format(time.RFC3339Nano),
		Task:       e.Task,
		Host:       e.Host,
		ID:         e.ID,
		Command:    e.Command,
		Label:      e.Label,
		Stream:     e.Stream,
		ExitStatus: e.ExitStatus,
		Test:       e.Test,
		Error:      e.Error,
		Level:      e.Level,
		Server:     e.Server,
		Table:      e.Table,
	}
	switch e.Kind {
	case Output, Message:
		je.Line = &e.Line
	case CommandEnd, TaskEnd:
		d := e.Duration.Seconds()
		je.DurationS = &d
	}
	if e.Kind == Message {
		je.Level = level(e)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(je); err != nil {
		// Cannot happen: every field is a string, number or bool, and
		// Props values come from Starlark as such.
		return nil
	}
	return buf.Bytes()
}
