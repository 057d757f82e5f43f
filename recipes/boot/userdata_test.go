package boot

import (
	"errors"
	"maps"
	"strings"
	"testing"
)

func TestParseUserData(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want map[string]string
	}{
		{"", map[string]string{}},
		{"  \n", map[string]string{}},
		{"DB=10.0.0.5;ROLE=job", map[string]string{"db": "10.0.0.5", "role": "job"}},
		{"ROLE=app;STAGE=production;REVISION=1234;DB=10.0.0.5;", map[string]string{"role": "app", "stage": "production", "revision": "1234", "db": "10.0.0.5"}},
		{" DB = 10.0.0.5 ;; ROLE=app\n", map[string]string{"db": "10.0.0.5", "role": "app"}},
		{"DB=10.0.0.5\nROLE=app\r\n", map[string]string{"db": "10.0.0.5", "role": "app"}},
		{"NOTE=a=b", map[string]string{"note": "a=b"}},
		{"EMPTY=", map[string]string{"empty": ""}},
		{"ROLE=app;role=app", map[string]string{"role": "app"}},
		{`{"DB": "10.0.0.5", "ROLE": "job", "WORKERS": 4, "DEBUG": false}`, map[string]string{"db": "10.0.0.5", "role": "job", "workers": "4", "debug": "false"}},
		{"\xef\xbb\xbfROLE=app", map[string]string{"role": "app"}},
	} {
		got, err := ParseUserData([]byte(tc.in))
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if !maps.Equal(got, tc.want) {
			t.Errorf("%q: got %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestParseUserDataErrors(t *testing.T) {
	for _, tc := range []struct{ in, part, reason string }{
		{"DB=10.0.0.5;ROLE", "ROLE", "want KEY=VALUE"},
		{"=app", "=app", "empty key"},
		{"ROLE=app;Role=job", "Role=job", "given twice with different values"},
		{"MY-KEY=1", "MY-KEY=1", "letters, digits and _"},
		{"1ROLE=app", "1ROLE=app", "letters, digits and _"},
		{`["ROLE=app"]`, `["ROLE=app"]`, "not a JSON object"},
		{`"ROLE=app"`, `"ROLE=app"`, "not a JSON object"},
		{`{"ROLE": "app"`, `{"ROLE": "app"`, "not a JSON object"},
		{`{"ROLE": "app"} {"DB": 1}`, `{"ROLE": "app"} {"DB": 1}`, "text after the JSON object"},
		{`{"ROLE": ["app", "job"]}`, `"ROLE": ["app","job"]`, "want a string, number or boolean"},
		{`{"ROLE": "app", "role": "job"}`, `"role": "job"`, "given twice"},
		{`{"": "app"}`, `"": "app"`, "empty key"},
	} {
		_, err := ParseUserData([]byte(tc.in))
		var ue *UserDataError
		if !errors.As(err, &ue) {
			t.Errorf("%q: error %v, want a UserDataError", tc.in, err)
			continue
		}
		if ue.Part != tc.part || !strings.Contains(ue.Reason, tc.reason) {
			t.Errorf("%q: part %q reason %q; want part %q and %q", tc.in, ue.Part, ue.Reason, tc.part, tc.reason)
		}
		if !strings.Contains(err.Error(), tc.part) {
			t.Errorf("%q: the message %q does not quote %q", tc.in, err, tc.part)
		}
	}
}
