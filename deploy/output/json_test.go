package output

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// decodeLines checks that every line is one JSON object and returns them.
func decodeLines(t *testing.T, out string) []map[string]any {
	t.Helper()
	var objs []map[string]any
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		objs = append(objs, m)
	}
	return objs
}

func TestJSON(t *testing.T) {
	var buf bytes.Buffer
	emitAll(NewJSON(&buf), script())
	objs := decodeLines(t, buf.String())
	if len(objs) != len(script()) {
		t.Fatalf("%d objects for %d events", len(objs), len(script()))
	}
	want := []string{
		`{"event":"task_start","task":"deploy:check","time":"2026-11-29T02:23:00Z"}`,
		`{"command":"mkdir -p /x","event":"command_start","host":"web1","id":1,"task":"deploy:check","time":"2026-11-29T02:23:00.001Z"}`,
		`{"command":"test -d /y","event":"command_start","host":"web22","id":2,"task":"deploy:check","time":"2026-11-29T02:23:00.002Z"}`,
		`{"event":"output","host":"web1","id":1,"line":"created /x","stream":"stdout","task":"deploy:check","time":"2026-11-29T02:23:00.003Z"}`,
		`{"event":"output","host":"web22","id":2,"line":"no such directory","stream":"stderr","task":"deploy:check","time":"2026-11-29T02:23:00.004Z"}`,
		`{"event":"output","host":"web22","id":2,"line":"","stream":"stdout","task":"deploy:check","time":"2026-11-29T02:23:00.005Z"}`,
		`{"command":"mkdir -p /x","duration_s":0.012,"event":"command_end","exit_status":0,"host":"web1","id":1,"task":"deploy:check","time":"2026-11-29T02:23:00.013Z"}`,
		`{"command":"test -d /y","duration_s":0.003,"event":"command_end","exit_status":1,"host":"web22","id":2,"task":"deploy:check","time":"2026-11-29T02:23:00.014Z"}`,
		`{"event":"message","host":"web1","level":"warn","line":"disk almost full","task":"deploy:check","time":"2026-11-29T02:23:00.02Z"}`,
		`{"event":"message","level":"info","line":"two\nlines","task":"deploy:check","time":"2026-11-29T02:23:00.021Z"}`,
		`{"duration_s":1.5,"error":"web22: exit 1","event":"task_end","task":"deploy:check","time":"2026-11-29T02:23:01.5Z"}`,
	}
	for i, m := range objs {
		// Re-encoding the decoded map sorts keys: a stable form to compare.
		got, _ := json.Marshal(m)
		if string(got) != want[i] {
			t.Errorf("event %d:\n got %s\nwant %s", i, got, want[i])
		}
	}
}

func TestJSONArbitraryBytes(t *testing.T) {
	var buf bytes.Buffer
	j := NewJSON(&buf)
	nasty := "\xff\xfe\x00\x1b[31m\"\\\u2028</script>\r\n\t" + string([]byte{0xe2, 0x82})
	j.Emit(Event{Kind: Output, Host: "h", Line: nasty, Command: nasty, Error: nasty})
	out := buf.String()
	if strings.Count(out, "\n") != 1 || !strings.HasSuffix(out, "\n") {
		t.Fatalf("not exactly one line: %q", out)
	}
	if !json.Valid([]byte(strings.TrimSuffix(out, "\n"))) {
		t.Fatalf("invalid JSON: %q", out)
	}
	m := decodeLines(t, out)[0]
	// encoding/json replaces each invalid byte with U+FFFD and keeps the rest.
	want := "\ufffd\ufffd\x00\x1b[31m\"\\\u2028</script>\r\n\t\ufffd\ufffd"
	if m["line"] != want {
		t.Errorf("line = %q, want %q", m["line"], want)
	}
	if !strings.Contains(out, "</script>") {
		t.Errorf("HTML escaped needlessly: %s", out)
	}
}

func TestJSONZeroTimeAndConcurrency(t *testing.T) {
	var buf bytes.Buffer
	j := NewJSON(&buf)
	var wg sync.WaitGroup
	before := time.Now()
	for g := range 8 {
		wg.Go(func() {
			for i := range 100 {
				j.Emit(Event{Kind: Output, Host: fmt.Sprint("h", g), Line: strings.Repeat("y", i*10)})
			}
		})
	}
	wg.Wait()
	objs := decodeLines(t, buf.String())
	if len(objs) != 800 {
		t.Fatalf("%d objects, want 800", len(objs))
	}
	ts, err := time.Parse(time.RFC3339Nano, objs[0]["time"].(string))
	if err != nil || ts.Before(before.Add(-time.Second)) {
		t.Errorf("zero time not filled with now: %v %v", objs[0]["time"], err)
	}
}

// Below -vv a labelled command carries its label, not its script, and
// its output is written only when it fails, just before its end, in
// arrival order; -vv writes everything as it comes.
func TestJSONLabelledCommands(t *testing.T) {
	kinds := func(out string) []string {
		var got []string
		for _, m := range decodeLines(t, out) {
			s := fmt.Sprint(m["event"], " ", m["id"])
			if l, ok := m["label"]; ok {
				s += " label=" + l.(string)
			}
			if c, ok := m["command"]; ok {
				s += " command=" + strings.SplitN(c.(string), " ", 2)[0]
			}
			if l, ok := m["line"]; ok {
				s += " line=" + l.(string)
			}
			got = append(got, s)
		}
		return got
	}
	var buf bytes.Buffer
	emitAll(NewJSON(&buf), labelled())
	want := []string{
		"task_start <nil>",
		"command_start 1 label=take the deploy lock",
		"command_end 1 label=take the deploy lock",
		"command_start 2 label=check the layout",
		"output 2 line=problem: a",
		"output 2 line=warning b",
		"output 2 line=problem: c",
		"command_end 2 label=check the layout",
		"task_end <nil>",
	}
	if got := kinds(buf.String()); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("normal:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	buf.Reset()
	emitAll(NewJSONWith(&buf, JSONOptions{Verbosity: VeryVerbose}), labelled())
	want = []string{
		"task_start <nil>",
		"command_start 1 label=take the deploy lock command=cd",
		"output 1 line=@@ locked",
		"output 1 line=@@ marks",
		"command_end 1 label=take the deploy lock command=cd",
		"command_start 2 label=check the layout command=for",
		"output 2 line=problem: a",
		"output 2 line=warning b",
		"output 2 line=problem: c",
		"command_end 2 label=check the layout command=for",
		"task_end <nil>",
	}
	if got := kinds(buf.String()); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("-vv:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// Davit's scripts and the protocol lines they print reach no format at
// Normal, Verbose or Quiet; the run log keeps them all.
func TestMachineryOnlyInLogAndVeryVerbose(t *testing.T) {
	machinery := []string{"@@", "mkdir .davit/lock", "for d in"}
	for _, v := range []Verbosity{Quiet, Normal, Verbose} {
		var pretty, plain, js bytes.Buffer
		emitAll(Multi(
			NewPretty(&pretty, PrettyOptions{Verbosity: v}),
			NewPlainWith(&plain, PlainOptions{Verbosity: v}),
			NewJSONWith(&js, JSONOptions{Verbosity: v}),
		), labelled())
		for name, out := range map[string]string{"pretty": pretty.String(), "plain": plain.String(), "json": js.String()} {
			for _, m := range machinery {
				if strings.Contains(out, m) {
					t.Errorf("%s at verbosity %d shows %q:\n%s", name, v, m, out)
				}
			}
			if !strings.Contains(out, "check the layout") {
				t.Errorf("%s at verbosity %d lacks the label:\n%s", name, v, out)
			}
		}
	}
	path := filepath.Join(t.TempDir(), "davit.log")
	log, err := NewLog(path, "davit")
	if err != nil {
		t.Fatal(err)
	}
	emitAll(log, labelled())
	log.Close()
	data, _ := os.ReadFile(path)
	for _, m := range append(machinery, "echo '@@ marks'", "1> @@ locked", "web1 #1 (take the deploy lock) $ cd /srv") {
		if !strings.Contains(string(data), m) {
			t.Errorf("the log lacks %q:\n%s", m, data)
		}
	}
}

// A failed labelled command reports at most its last keepLines lines.
func TestJSONHeldOutputIsBounded(t *testing.T) {
	var buf bytes.Buffer
	j := NewJSON(&buf)
	j.Emit(Event{Kind: CommandStart, Host: "h", ID: 1, Label: "noisy", Command: "yes"})
	for i := range keepLines + 5 {
		j.Emit(Event{Kind: Output, Host: "h", ID: 1, Line: fmt.Sprint(i)})
	}
	j.Emit(Event{Kind: CommandEnd, Host: "h", ID: 1, Label: "noisy", ExitStatus: status(1)})
	objs := decodeLines(t, buf.String())
	if len(objs) != keepLines+2 {
		t.Fatalf("%d events, want %d", len(objs), keepLines+2)
	}
	if first, last := objs[1]["line"], objs[keepLines]["line"]; first != "5" || last != fmt.Sprint(keepLines+4) {
		t.Errorf("held lines run from %v to %v", first, last)
	}
	if len(j.held) != 0 {
		t.Errorf("%d commands still held", len(j.held))
	}
}
