package boot

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestInstallUnit(t *testing.T) {
	dir := t.TempDir()
	u := Unit{Davit: "/usr/local/bin/davit", Args: []string{"-f", "/home/payroll/Deployfile", "self-deploy", "production", "note=50% of $HOME; ok"}}
	path, err := u.Install(dir)
	if err != nil {
		t.Fatal(err)
	}
	if path != filepath.Join(dir, UnitName) {
		t.Errorf("path %s", path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	unit := string(b)
	for _, want := range []string{
		"Type=oneshot\n", "After=network-online.target\n", "Wants=network-online.target\n",
		"WantedBy=multi-user.target\n", "EnvironmentFile=-/etc/default/davit-self-deploy\n",
		`ExecStart=/usr/local/bin/davit -f /home/payroll/Deployfile self-deploy production "note=50%% of $$HOME; ok"` + "\n",
	} {
		if !strings.Contains(unit, want) {
			t.Errorf("unit lacks %q:\n%s", want, unit)
		}
	}
	if info, _ := os.Stat(path); info.Mode().Perm() != 0o644 {
		t.Errorf("mode %v", info.Mode())
	}
	// Installing again replaces the unit.
	u.Args = u.Args[:3]
	if _, err := u.Install(dir); err != nil {
		t.Fatal(err)
	}
	b, _ = os.ReadFile(path)
	if !strings.Contains(string(b), "ExecStart=/usr/local/bin/davit -f /home/payroll/Deployfile self-deploy\n") {
		t.Errorf("reinstalled unit:\n%s", b)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("%d files in the unit directory", len(ents))
	}
	if _, err := (Unit{Davit: "davit"}).Install(dir); err == nil {
		t.Error("a relative binary path was accepted")
	}
}
