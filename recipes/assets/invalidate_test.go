package assets

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const cfSettings = `set("assets_distribution", "` + testDistribution + `")`

// The changed and the deleted paths go in one invalidation; new files
// need none; above assets_invalidate_max_paths it is "/*"; with a wait
// the sync returns once CloudFront says Completed.
func TestInvalidationOfChangedAndDeletedPaths(t *testing.T) {
	f := newFixture(t)
	for _, n := range []string{"index.html", "app.js", "old.css", "a b.txt", "x1", "x2", "x3"} {
		f.write(n, n)
	}
	if _, lines, err := f.sync(cfSettings, false); err != nil {
		t.Fatal(err)
	} else if s := summary(t, lines); strings.Contains(s, "invalidation") {
		t.Errorf("a first sync (all new) invalidated: %q", s)
	}
	if n := len(f.cf.Requests()); n != 0 {
		t.Errorf("first sync sent %d CloudFront requests, want 0", n)
	}

	f.write("index.html", "changed")
	f.write("a b.txt", "changed too")
	f.write("new.js", "new")
	os.Remove(filepath.Join(f.dir, "public", "old.css"))
	_, lines, err := f.sync(cfSettings+"\nset(\"assets_delete\", True)\nset(\"assets_invalidation_wait\", 10)", false)
	if err != nil {
		t.Fatal(err)
	}
	invs := f.cf.Invalidations(testDistribution)
	if len(invs) != 1 || strings.Join(invs[0].Paths, ",") != "/a%20b.txt,/index.html,/old.css" {
		t.Fatalf("invalidations %+v; want one of /a%%20b.txt, /index.html, /old.css", invs)
	}
	reqs := f.cf.Requests()
	if len(reqs) < 2 || reqs[0].Method != "POST" || reqs[len(reqs)-1].Method != "GET" {
		t.Errorf("CloudFront requests %+v; want the create, then polls until completed", reqs)
	}
	s := summary(t, lines)
	if !strings.Contains(s, "invalidation "+invs[0].ID) {
		t.Errorf("summary %q does not name the invalidation", s)
	}
	if !strings.Contains(strings.Join(lines, "\n"), "waiting up to 10s for invalidation") {
		t.Errorf("no wait message in %q", lines)
	}

	// More changes than the threshold: one wildcard.
	for _, n := range []string{"x1", "x2", "x3"} {
		f.write(n, "changed "+n)
	}
	if _, _, err := f.sync(cfSettings+"\nset(\"assets_invalidate_max_paths\", 2)", false); err != nil {
		t.Fatal(err)
	}
	invs = f.cf.Invalidations(testDistribution)
	if len(invs) != 2 || strings.Join(invs[1].Paths, ",") != "/*" {
		t.Errorf("invalidations %+v; want the second to be /*", invs)
	}
}

func TestInvalidationDryRunWaitAndErrors(t *testing.T) {
	f := newFixture(t)
	f.write("index.html", "one")
	if _, _, err := f.sync(cfSettings, false); err != nil {
		t.Fatal(err)
	}
	f.write("index.html", "two")

	// A dry run says what it would invalidate and sends nothing.
	_, lines, err := f.sync(cfSettings, true)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(lines, "\n"), "would invalidate on CloudFront distribution "+testDistribution+": /index.html") {
		t.Errorf("dry run output %q", lines)
	}
	if n := len(f.cf.Requests()); n != 0 {
		t.Errorf("dry run sent %d CloudFront requests", n)
	}

	// An unknown distribution: named; the uploads are done and said so.
	_, _, err = f.sync(`set("assets_distribution", "ENOSUCHDIST")`, false)
	if err == nil || !strings.Contains(err.Error(), `distribution "ENOSUCHDIST" does not exist (assets_distribution)`) || !strings.Contains(err.Error(), "uploaded 1") {
		t.Errorf("err = %v", err)
	}

	// A wait shorter than CloudFront takes: bounded, and says so.
	f.write("index.html", "three")
	_, _, err = f.sync(cfSettings+"\nset(\"assets_invalidation_wait\", \"100ms\")", false)
	if err == nil || !strings.Contains(err.Error(), "did not complete within assets_invalidation_wait (100ms)") {
		t.Errorf("err = %v; want the bounded wait's", err)
	}
}
