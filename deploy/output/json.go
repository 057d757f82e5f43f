package output

import (
	"bytes"
	"encoding/json"
	"io"
	"sync"
	"time"
)

// JSON writes one JSON object per event and line, for programs that watch
// a run. Output bytes that are not valid UTF-8 are replaced by U+FFFD, so
// every line stays valid JSON whatever a command prints.
//
//	{"event":"command_end","time":"2026-11-29T02:23:00.126Z","task":"deploy:check","host":"web1","id":3,"command":"mkdir -p /x","exit_status":0,"duration_s":0.012}
type JSON struct {
	mu sync.Mutex
	w  io.Writer
}

// NewJSON returns the JSON-lines format writing to w.
func NewJSON(w io.Writer) *JSON { return &JSON{w: w} }

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
}

// Emit implements Sink.
func (j *JSON) Emit(e Event) {
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
		return // cannot happen: every field is a string or number
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	j.w.Write(buf.Bytes())
}
