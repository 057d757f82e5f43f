package output

// SinkFunc adapts a function to a Sink, for tests and small adapters. The
// function must be safe for concurrent use.
type SinkFunc func(Event)

// Emit calls f(e).
func (f SinkFunc) Emit(e Event) { f(e) }

// Multi sends every event to each sink in order: the terminal format and
// the run log see the same run. Nil sinks are skipped.
func Multi(sinks ...Sink) Sink {
	var m multi
	for _, s := range sinks {
		if s != nil {
			m = append(m, s)
		}
	}
	if len(m) == 1 {
		return m[0]
	}
	return m
}

type multi []Sink

func (m multi) Emit(e Event) {
	for _, s := range m {
		s.Emit(e)
	}
}
