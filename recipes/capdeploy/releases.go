package capdeploy

import (
	"slices"
	"strings"
	"time"

	"github.com/davit-deploy/davit/deploy"
	"github.com/davit-deploy/davit/deploy/output"
	"github.com/davit-deploy/davit/tasks"
)

// releaseRow is one line of the releases table: one release across every
// host that has it.
type releaseRow struct {
	id, revision, by, state, hosts string
}

// releases is the releases task: one table for the fleet, newest first,
// with each release's revision, time, deployer and marks; where hosts
// differ (a release missing somewhere, current or bad on some hosts only,
// different revisions) the row says which hosts.
func (r *Recipe) releases(c *tasks.Context) error {
	st, done, err := r.state(c, opCheck)
	if err != nil {
		return err
	}
	defer done()
	step := probeStep("read releases", st.layout, true, "")
	err = st.on(c, func(hc *tasks.HostContext, hs *hostState) error {
		out, err := runStep(hc, step)
		if err != nil {
			return stepError("read releases", err)
		}
		hs.probe = parseProbe(out, st.layout)
		return nil
	})
	if err != nil {
		return err
	}
	if c.DryRun() {
		// The probes only reported their commands: there is no table.
		c.Info("dry run: each host's releases would be read and listed")
		return nil
	}
	var probes []hostProbe
	for _, h := range st.hosts {
		probes = append(probes, hostProbe{h.String(), st.host(h).probe})
	}
	table, none := releasesTable(probes)
	if table == nil {
		c.Info(none)
		return nil
	}
	c.Emit(output.Event{Kind: output.TableKind, Table: table})
	return nil
}

// releasesTable is the fleet's releases, newest first; with none, it is
// nil and none says so.
func releasesTable(hosts []hostProbe) (table *output.Table, none string) {
	ids := map[string]bool{}
	for _, h := range hosts {
		for _, id := range h.probe.releases {
			ids[id] = true
		}
	}
	if len(ids) == 0 {
		lines := []string{"no releases"}
		for _, h := range hosts {
			if h.probe.missing {
				lines = append(lines, h.name+": no deploy_to yet")
			}
		}
		return nil, strings.Join(lines, "\n")
	}
	table = &output.Table{Columns: []string{"RELEASE", "REVISION", "DEPLOYED AT (UTC)", "BY", "STATE", "HOSTS"}}
	order := sortedKeys(ids)
	slices.Reverse(order)
	for _, id := range order {
		row := releaseRowFor(id, hosts)
		table.Rows = append(table.Rows, []string{row.id, row.revision, releaseTime(id), row.by, row.state, row.hosts})
	}
	return table, ""
}

func releaseTime(id string) string {
	t, err := time.Parse(deploy.ReleaseIDFormat, id)
	if err != nil {
		return "-"
	}
	return t.Format("2006-01-02 15:04:05")
}

func releaseRowFor(id string, hosts []hostProbe) releaseRow {
	var present, missing []string
	revs := map[string][]string{}
	users := map[string]bool{}
	states := map[string][]string{}
	for _, h := range hosts {
		p := h.probe
		if !p.has(id) {
			missing = append(missing, h.name)
			continue
		}
		present = append(present, h.name)
		m := p.marks[id]
		rev := p.revisions[id]
		if rev == "" {
			rev = m.get("revision")
		}
		if rev == "" {
			rev = p.logged[id].revision
		}
		revs[shortRev(rev)] = append(revs[shortRev(rev)], h.name)
		user := m.get("user")
		if user == "" {
			user = p.logged[id].user
		}
		if user != "" {
			users[user] = true
		}
		if p.currentID == id {
			states["current"] = append(states["current"], h.name)
		}
		switch s := p.releaseState(id, ""); s {
		case stateBad, stateFailed:
			states[s] = append(states[s], h.name)
		}
	}
	row := releaseRow{id: id, by: strings.Join(sortedKeys(users), ",")}
	if row.by == "" {
		row.by = "-"
	}
	// The revision: one value, or each value with its hosts.
	if len(revs) == 1 {
		for rv := range revs {
			row.revision = orDash(rv)
		}
	} else {
		var parts []string
		for _, rv := range sortedKeys(revs) {
			parts = append(parts, orDash(rv)+" on "+strings.Join(revs[rv], ","))
		}
		row.revision = strings.Join(parts, "; ")
	}
	var marks []string
	for _, s := range []string{"current", stateBad, stateFailed} {
		hs := states[s]
		switch {
		case len(hs) == 0:
		case len(hs) == len(present):
			marks = append(marks, s)
		default:
			marks = append(marks, s+" on "+strings.Join(hs, ","))
		}
	}
	row.state = strings.Join(marks, ", ")
	if row.state == "" {
		row.state = "-"
	}
	if len(missing) == 0 {
		row.hosts = "all"
	} else {
		row.hosts = strings.Join(present, ",") + " (missing on " + strings.Join(missing, ",") + ")"
	}
	return row
}

func shortRev(rev string) string {
	if len(rev) > 12 {
		return rev[:12]
	}
	return rev
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
