package output

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func hostEvents() []Event {
	return []Event{
		{Kind: TaskStart, Task: "hosts"},
		{Kind: HostInfo, Task: "hosts", Host: "web1", Server: &Server{Name: "web1", Address: "10.0.0.1", User: "deploy", Roles: []string{"app", "web"}, Primary: true, Source: "static"}},
		{Kind: HostInfo, Task: "hosts", Host: "i-0abc", Server: &Server{Name: "i-0abc", Port: 2222, Roles: []string{"job"}, Source: "ec2", Props: map[string]any{"instance_type": "m1.small", "az": "eu-1a", "token": "s3cret"}}},
		{Kind: TaskEnd, Task: "hosts"},
	}
}

func TestHostEventsAreATableInTextFormats(t *testing.T) {
	want := "" +
		"HOST         ADDRESS   USER    ROLES              SOURCE  PROPERTIES\n" +
		"web1         10.0.0.1  deploy  app,web (primary)  static  -\n" +
		"i-0abc:2222  -         -       job                ec2     az=eu-1a instance_type=m1.small token=[REDACTED]\n"
	for name, mk := range map[string]func(*bytes.Buffer) Sink{
		"pretty": func(b *bytes.Buffer) Sink { return NewPretty(b, PrettyOptions{}) },
		"plain":  func(b *bytes.Buffer) Sink { return NewPlain(b) },
	} {
		var buf bytes.Buffer
		s := NewRedactor(mk(&buf), func() []string { return []string{"s3cret"} })
		for _, e := range hostEvents() {
			s.Emit(e)
		}
		// The table goes under its task's header.
		got, ok := strings.CutPrefix(buf.String(), "== hosts\n")
		if !ok {
			t.Errorf("%s: no header above the table:\n%s", name, buf.String())
		}
		if name == "plain" {
			got = got[:strings.LastIndex(got, "== hosts done")]
		}
		if got != want {
			t.Errorf("%s:\n%s\nwant:\n%s", name, got, want)
		}
	}
}

func TestHostEventsInJSONAndLog(t *testing.T) {
	var buf bytes.Buffer
	logPath := filepath.Join(t.TempDir(), "davit.log")
	log, err := NewLog(logPath, "davit", "hosts")
	if err != nil {
		t.Fatal(err)
	}
	s := NewRedactor(Multi(NewJSON(&buf), log), func() []string { return []string{"s3cret"} })
	for _, e := range hostEvents() {
		s.Emit(e)
	}
	log.Close()
	var hosts []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		if m["event"] == "host" {
			hosts = append(hosts, m)
		}
	}
	if len(hosts) != 2 {
		t.Fatalf("%d host events:\n%s", len(hosts), buf.String())
	}
	srv := hosts[1]["server"].(map[string]any)
	if srv["name"] != "i-0abc" || srv["source"] != "ec2" || srv["properties"].(map[string]any)["token"] != Redacted {
		t.Errorf("second host event: %v", hosts[1])
	}
	data, _ := os.ReadFile(logPath)
	if !strings.Contains(string(data), "host web1 address=10.0.0.1 user=deploy port=0 roles=app,web primary=true source=static") || strings.Contains(string(data), "s3cret") {
		t.Errorf("log:\n%s", data)
	}
}

func TestTableEvents(t *testing.T) {
	table := &Table{Columns: []string{"RELEASE", "BY", "STATE"}, Rows: [][]string{
		{"20261201000000", "alice", "current"},
		{"20261130000000", "s3cret-bob", "-"},
	}}
	want := "== releases\n" +
		"RELEASE         BY          STATE\n" +
		"20261201000000  alice       current\n" +
		"20261130000000  [REDACTED]  -\n"
	for name, mk := range map[string]func(*bytes.Buffer) Sink{
		"pretty": func(b *bytes.Buffer) Sink { return NewPretty(b, PrettyOptions{}) },
		"plain":  func(b *bytes.Buffer) Sink { return NewPlain(b) },
	} {
		var buf bytes.Buffer
		s := NewRedactor(mk(&buf), func() []string { return []string{"s3cret-bob"} })
		s.Emit(Event{Kind: TaskStart, Task: "releases"})
		s.Emit(Event{Kind: TableKind, Task: "releases", Table: table})
		if got := buf.String(); got != want {
			t.Errorf("%s:\n%s\nwant:\n%s", name, got, want)
		}
	}
	var buf bytes.Buffer
	NewRedactor(NewJSON(&buf), func() []string { return []string{"s3cret-bob"} }).Emit(Event{Kind: TableKind, Task: "releases", Table: table})
	var got struct {
		Event string `json:"event"`
		Table Table  `json:"table"`
	}
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got.Event != "table" || len(got.Table.Rows) != 2 || got.Table.Rows[1][1] != Redacted || got.Table.Columns[0] != "RELEASE" {
		t.Errorf("json: %s", buf.String())
	}
	if table.Rows[1][1] != "s3cret-bob" {
		t.Error("the redactor changed the caller's table")
	}
}
