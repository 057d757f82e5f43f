package deploy

import (
	"reflect"
	"slices"
	"testing"
)

func TestParseHost(t *testing.T) {
	for _, tc := range []struct {
		spec string
		want Host
		str  string
	}{
		{"web1", Host{Name: "web1"}, "web1"},
		{" web1.example.com ", Host{Name: "web1.example.com"}, "web1.example.com"},
		{"deploy@web1", Host{Name: "web1", User: "deploy"}, "deploy@web1"},
		{"deploy@web1:2222", Host{Name: "web1", User: "deploy", Port: 2222}, "deploy@web1:2222"},
		{"10.0.0.5:22", Host{Name: "10.0.0.5", Port: 22}, "10.0.0.5:22"},
		{"[::1]:22", Host{Name: "::1", Port: 22}, "[::1]:22"},
		{"[::1]", Host{Name: "::1"}, "[::1]"},
		{"u@[fe80::1]:65535", Host{Name: "fe80::1", User: "u", Port: 65535}, "u@[fe80::1]:65535"},
		{"::1", Host{Name: "::1"}, "[::1]"},
		{"a@b@c", Host{Name: "c", User: "a@b"}, "a@b@c"},
	} {
		h, err := ParseHost(tc.spec)
		if err != nil {
			t.Errorf("ParseHost(%q): %v", tc.spec, err)
			continue
		}
		if !reflect.DeepEqual(*h, tc.want) {
			t.Errorf("ParseHost(%q) = %+v, want %+v", tc.spec, *h, tc.want)
		}
		if h.String() != tc.str || h.Key() != tc.str {
			t.Errorf("ParseHost(%q).String() = %q, want %q", tc.spec, h.String(), tc.str)
		}
		// What String prints parses back to the same host.
		if again, err := ParseHost(h.String()); err != nil || !reflect.DeepEqual(again, h) {
			t.Errorf("round trip of %q: %+v, %v", h.String(), again, err)
		}
	}
	for _, bad := range []string{
		"", "   ", "@web1", "web1:", "web1:0", "web1:65536", "web1:-1", "web1:ssh", "web1:22x",
		"[::1", "[::1]x", "[::1]:", "[::1]:0", "[]", "[]:22", "user@", "user@:22",
		"web 1", "web1;id", "a/b", "$(id)", "`id`", "web1|x", "web1&", "a'b", `a"b`, `a\b`, "a<b", "a>b", "a\nb",
	} {
		if h, err := ParseHost(bad); err == nil {
			t.Errorf("ParseHost(%q) = %+v, want an error", bad, h)
		}
	}
}

func TestHostBasics(t *testing.T) {
	h := &Host{Name: "web1", Address: "10.0.0.1", Roles: []string{"app", "web"}}
	if h.DialAddress() != "10.0.0.1" || (&Host{Name: "x"}).DialAddress() != "x" {
		t.Error("DialAddress")
	}
	if !h.HasRole("web") || !h.HasRole("all") || h.HasRole("db") {
		t.Error("HasRole")
	}
	for _, tc := range []struct {
		h    Host
		want bool
	}{
		{Host{Name: "localhost"}, true},
		{Host{Name: "localhost", Port: 22}, false},
		{Host{Name: "localhost", Address: "127.0.0.2"}, false},
		{Host{Name: "127.0.0.1"}, false},
		{Host{Name: "web1", Backend: "local"}, true},
		{Host{Name: "localhost", Backend: "ssh"}, false},
	} {
		if got := tc.h.IsLocal(); got != tc.want {
			t.Errorf("%+v.IsLocal() = %v", tc.h, got)
		}
	}
}

func TestHostMerge(t *testing.T) {
	h := &Host{Name: "web1", Roles: []string{"app"}, Props: map[string]any{"a": 1}}
	h.Merge(&Host{Name: "web1", Roles: []string{"web", "app"}, Props: map[string]any{"a": 2, "b": 3}, Primary: true, Address: "10.0.0.1", Backend: "ssh"})
	h.Merge(&Host{Name: "web1", Roles: []string{"db"}})
	want := &Host{Name: "web1", Roles: []string{"app", "web", "db"}, Props: map[string]any{"a": 2, "b": 3}, Primary: true, Address: "10.0.0.1", Backend: "ssh"}
	if !reflect.DeepEqual(h, want) {
		t.Errorf("merged = %+v, want %+v", h, want)
	}
	empty := &Host{Name: "x"}
	empty.Merge(&Host{Props: map[string]any{"k": "v"}})
	if empty.Props["k"] != "v" {
		t.Error("Merge into nil Props")
	}
}

func TestParseList(t *testing.T) {
	if got := ParseList(" a, b ,,c ,"); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Errorf("ParseList = %q", got)
	}
	if got := ParseList(""); got != nil {
		t.Errorf("ParseList(\"\") = %q", got)
	}
}

func names(hosts []*Host) []string {
	var n []string
	for _, h := range hosts {
		n = append(n, h.Name)
	}
	return n
}

func fleet() []*Host {
	return []*Host{
		{Name: "web1", Roles: []string{"web", "app"}},
		{Name: "web2", Roles: []string{"web", "app"}, Primary: true},
		{Name: "job1", User: "deploy", Roles: []string{"job"}, Address: "10.0.0.7"},
		{Name: "db1", Port: 2222, Roles: []string{"db"}},
		{Name: "bare"},
	}
}

func TestFilter(t *testing.T) {
	for _, tc := range []struct {
		f    Filter
		want []string
	}{
		{Filter{}, []string{"web1", "web2", "job1", "db1", "bare"}},
		{Filter{Roles: []string{"web"}}, []string{"web1", "web2"}},
		{Filter{Roles: []string{"db", "job"}}, []string{"job1", "db1"}},
		{Filter{Roles: []string{"all"}}, []string{"web1", "web2", "job1", "db1", "bare"}},
		{Filter{Roles: []string{"j*"}}, []string{"job1"}},
		{Filter{Roles: []string{"nope"}}, nil},
		{Filter{Hosts: []string{"web*"}}, []string{"web1", "web2"}},
		{Filter{Hosts: []string{"web?", "db1"}}, []string{"web1", "web2", "db1"}},
		{Filter{Hosts: []string{"deploy@job1"}}, []string{"job1"}}, // as String() prints it
		{Filter{Hosts: []string{"db1:2222"}}, []string{"db1"}},
		{Filter{Hosts: []string{"10.0.0.*"}}, []string{"job1"}}, // by address
		{Filter{Hosts: []string{"web1"}, Roles: []string{"app"}}, []string{"web1"}},
		{Filter{Hosts: []string{"web1"}, Roles: []string{"db"}}, nil},
	} {
		if got := names(tc.f.Apply(fleet())); !slices.Equal(got, tc.want) {
			t.Errorf("%+v.Apply = %q, want %q", tc.f, got, tc.want)
		}
	}
	if !(Filter{}).Empty() || (Filter{Roles: []string{"x"}}).Empty() {
		t.Error("Empty")
	}
	if err := (Filter{Roles: []string{"a*"}, Hosts: []string{"web[12]"}}).Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
	for _, bad := range []Filter{{Roles: []string{"["}}, {Hosts: []string{"web[1"}}, {Hosts: []string{`x\`}}} {
		if err := bad.Validate(); err == nil {
			t.Errorf("%+v.Validate() = nil", bad)
		}
	}
}

func TestWithRolesAndPrimary(t *testing.T) {
	hosts := fleet()
	if got := names(WithRoles(hosts, "job", "db")); !slices.Equal(got, []string{"job1", "db1"}) {
		t.Errorf("WithRoles = %q", got)
	}
	if got := names(WithRoles(hosts, "all")); len(got) != len(hosts) {
		t.Errorf("WithRoles(all) = %q", got)
	}
	for role, want := range map[string]string{"web": "web2", "app": "web2", "db": "db1", "all": "web2"} {
		if p := Primary(hosts, role); p == nil || p.Name != want {
			t.Errorf("Primary(%s) = %v, want %s", role, p, want)
		}
	}
	if p := Primary(hosts, "none"); p != nil {
		t.Errorf("Primary(none) = %v", p)
	}
	hosts[1].Primary = false // none marked: the first with the role
	if p := Primary(hosts, "web"); p.Name != "web1" {
		t.Errorf("Primary without a mark = %v", p)
	}
}
