package output

// Verbosity says how much of a run the text formats (pretty, plain) and
// the JSON format show. The run log always keeps everything.
//
// The formats tell davit's own commands from the user's by their Label: a
// recipe labels every script it generates ("take the deploy lock"), a
// Deployfile's h.execute carries none. Davit's own commands are shown by
// their label, their output only when they fail (it is the protocol
// between davit and its scripts, not something a person reads); a user's
// command shows its output as it runs.
type Verbosity int

const (
	// Quiet (-q) shows task headers, failed commands with their output,
	// warnings and errors, and the messages of the task that was asked
	// for (its closing summary).
	Quiet Verbosity = -1
	// Normal adds one line per finished command, info messages, and the
	// output of the user's commands as it arrives.
	Normal Verbosity = 0
	// Verbose (-v) adds a line when each command starts.
	Verbose Verbosity = 1
	// VeryVerbose (-vv) adds the full script of every command and the
	// output of davit's own commands, and, in plain and JSON, every
	// task's start and end.
	VeryVerbose Verbosity = 2
)

// showsOutput reports whether a command's output is shown as it arrives
// (else it is held, and shown only if the command fails).
func (v Verbosity) showsOutput(user bool) bool {
	return v >= VeryVerbose || (user && v >= Normal)
}

// showsMessage reports whether a Message event is shown: under Quiet only
// warnings, errors and the messages of the task the user asked for.
func (v Verbosity) showsMessage(e Event, root string) bool {
	return v >= Normal || level(e) != "info" || (root != "" && e.Task == root)
}
