package boot

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// UnitName is the systemd unit --install writes.
const UnitName = "davit-self-deploy.service"

// DefaultUnitDir is where --install writes the unit.
const DefaultUnitDir = "/etc/systemd/system"

// EnvironmentFile is read by the unit, when it exists, for the secrets the
// Deployfile takes from env() (a repository password, say): they stay out
// of the unit and out of the user data, which every process on the
// instance can read.
const EnvironmentFile = "/etc/default/davit-self-deploy"

// Unit describes the boot service.
type Unit struct {
	// Davit is the absolute path of the davit binary.
	Davit string
	// Args follow the binary: -f DEPLOYFILE, self-deploy and its words.
	Args []string
}

// Render is the unit file: a oneshot after the network is up, as root so
// it can write /etc/hosts (the deploy itself runs as self_deploy_user),
// logging to the journal, failing the unit when the deploy fails.
func (u Unit) Render() string {
	words := []string{systemdQuote(u.Davit)}
	for _, a := range u.Args {
		words = append(words, systemdQuote(a))
	}
	return fmt.Sprintf(`# Written by davit self-deploy --install.
[Unit]
Description=davit self-deploy: configure and deploy this instance from its user data
Wants=network-online.target
After=network-online.target

[Service]
Type=oneshot
RemainAfterExit=yes
EnvironmentFile=-%s
ExecStart=%s
StandardOutput=journal
StandardError=journal
# A deploy is bounded by its own timeouts; this only stops a hung boot.
TimeoutStartSec=30min

[Install]
WantedBy=multi-user.target
`, EnvironmentFile, strings.Join(words, " "))
}

// Install writes the unit into dir (DefaultUnitDir when ""), atomically,
// and returns its path.
func (u Unit) Install(dir string) (string, error) {
	if dir == "" {
		dir = DefaultUnitDir
	}
	if !filepath.IsAbs(u.Davit) {
		return "", fmt.Errorf("install: the davit binary %q is not an absolute path", u.Davit)
	}
	path := filepath.Join(dir, UnitName)
	tmp, err := os.CreateTemp(dir, "."+UnitName+".*")
	if err != nil {
		return "", fmt.Errorf("install: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(u.Render()); err != nil {
		tmp.Close()
		return "", fmt.Errorf("install: %w", err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return "", fmt.Errorf("install: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("install: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", fmt.Errorf("install: %w", err)
	}
	return path, nil
}

// EnableHint is what to run after Install.
func EnableHint() string {
	return "systemctl daemon-reload && systemctl enable " + UnitName +
		"\n(it runs at the next boot; `systemctl start " + UnitName + "` runs it now, `journalctl -u " + UnitName + "` shows its log)"
}

// systemdQuote quotes one word of ExecStart: systemd splits the line on
// spaces and reads "…" with C escapes, expands $VAR and %-specifiers, so a
// word with any of those is double-quoted with \ and " escaped, $ doubled
// and % doubled.
func systemdQuote(s string) string {
	s = strings.ReplaceAll(s, "%", "%%")
	s = strings.ReplaceAll(s, "$", "$$")
	if s != "" && !strings.ContainsAny(s, " \t\n\"'\\;") {
		return s
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\t", `\t`)
	return `"` + r.Replace(s) + `"`
}
