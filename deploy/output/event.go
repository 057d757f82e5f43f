// Package output turns what a run does into what people and programs read:
// the pretty, plain and json formats on the terminal, and the run log.
package output

import "time"

// Kind names an event.
type Kind string

const (
	TaskStart    Kind = "task_start"
	TaskEnd      Kind = "task_end"
	CommandStart Kind = "command_start"
	CommandEnd   Kind = "command_end"
	Output       Kind = "output"
	Message      Kind = "message" // a line a task prints (info, warnings)
	// HostInfo describes one host of the inventory (the `hosts` task):
	// the text formats gather a task's HostInfo events into one table.
	HostInfo Kind = "host"
	// TableKind is a table a task prints whole (the releases task): the
	// text formats align its columns, json keeps columns and rows.
	TableKind Kind = "table"
)

// Table is what a TableKind event shows.
type Table struct {
	Columns []string   `json:"columns"`
	Rows    [][]string `json:"rows"`
}

// Server is what a HostInfo event says about a host.
type Server struct {
	Name    string         `json:"name"`
	Address string         `json:"address,omitempty"`
	User    string         `json:"user,omitempty"`
	Port    int            `json:"port,omitempty"`
	Roles   []string       `json:"roles"`
	Primary bool           `json:"primary,omitempty"`
	Source  string         `json:"source"`
	Props   map[string]any `json:"properties,omitempty"`
}

// Stream says where an output line came from.
type Stream string

const (
	Stdout Stream = "stdout"
	Stderr Stream = "stderr"
)

// Event is one thing that happened during a run. Fields that do not apply
// to a kind are left zero.
type Event struct {
	Time time.Time `json:"time"`
	Kind Kind      `json:"event"`
	Task string    `json:"task,omitempty"`
	Host string    `json:"host,omitempty"`
	// ID ties a command's start, output and end together when several
	// commands run on one host at once.
	ID      uint64 `json:"id,omitempty"`
	Command string `json:"command,omitempty"`
	// Label is a short description of the command for people, shown by
	// the pretty format in place of a long generated script.
	Label  string `json:"label,omitempty"`
	Stream Stream `json:"stream,omitempty"`
	Line   string `json:"line,omitempty"`
	// ExitStatus is set on CommandEnd; -1 when the command did not finish.
	ExitStatus *int `json:"exit_status,omitempty"`
	// Test marks a command run as a condition (a host's test()): a
	// non-zero exit status is its answer, not a failure.
	Test     bool          `json:"test,omitempty"`
	Duration time.Duration `json:"-"`
	Error    string        `json:"error,omitempty"`
	// Level is "info", "warn" or "error" for Message events.
	Level string `json:"level,omitempty"`
	// Server is set on HostInfo events.
	Server *Server `json:"server,omitempty"`
	// Table is set on TableKind events.
	Table *Table `json:"table,omitempty"`
}

// Sink receives events. Implementations must be safe for concurrent use:
// hosts report from their own goroutines.
type Sink interface {
	Emit(Event)
}
