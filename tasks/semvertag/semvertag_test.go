package semvertag

import (
	"fmt"
	"strings"
	"testing"
)

func TestPick(t *testing.T) {
	tags := []string{"v1.0.0", "v1.2.0", "v1.3.0-rc.1", "v2.0.0", "release-7", "v1.4", "1.2.0"}
	for c, want := range map[string]string{
		"^1.2":      "1.2.0", // two tags of one version: the name order decides
		">=1.3.0-0": "v2.0.0",
		"~1.3.0-0":  "v1.3.0-rc.1",
		"^1":        "1.2.0",
		"1.0.0":     "v1.0.0",
		">=2":       "v2.0.0",
	} {
		if got, err := Pick(c, tags); err != nil || got != want {
			t.Errorf("Pick(%q) = %q, %v; want %q", c, got, err, want)
		}
	}
	if _, err := Pick("^3", tags); err == nil || !strings.Contains(err.Error(), "version tags: v2.0.0, v1.3.0-rc.1, 1.2.0, v1.2.0, v1.0.0") {
		t.Errorf("Pick(^3) error = %v", err)
	}
	if _, err := Pick("^1", []string{"release"}); err == nil || !strings.Contains(err.Error(), "no version tags") {
		t.Errorf("no version tags: %v", err)
	}
	if _, err := Pick("not a constraint", tags); err == nil || !strings.Contains(err.Error(), `version "not a constraint"`) {
		t.Errorf("bad constraint: %v", err)
	}
}

func TestListSome(t *testing.T) {
	var tags []string
	for i := range 25 {
		tags = append(tags, fmt.Sprintf("v0.0.%d", i))
	}
	_, err := Pick("^1", tags)
	if err == nil || !strings.Contains(err.Error(), "… (5 more)") || !strings.Contains(err.Error(), "v0.0.24, v0.0.23") {
		t.Errorf("long list: %v", err)
	}
}

func TestParse(t *testing.T) {
	for tag, ok := range map[string]bool{"v1.2.3": true, "1.2.3-rc.1+build": true, "v1.2": false, "2024-01": false, "vv1.2.3": false} {
		if _, got := Parse(tag); got != ok {
			t.Errorf("Parse(%q) ok = %v, want %v", tag, got, ok)
		}
	}
}
