package macos

import (
	"context"
	"fmt"
	"regexp"
	"strings"

	"github.com/sxlab/sxlab/vm/sim/shell"
)

// The system TCC database, where the golden's grants are: readable by
// root (with Full Disk Access for the responsible client, which the
// model does not check: unverified on macOS).
const tccDB = "/Library/Application Support/com.apple.TCC/TCC.db"

// tccServices maps the access table's service names to the golden's
// grants.
var tccServices = map[string]func(g *Golden) []string{
	"kTCCServiceAccessibility": func(g *Golden) []string { return g.Accessibility },
	"kTCCServiceAppleEvents":   func(g *Golden) []string { return g.AppleEvents },
}

// tccQuery is the one query form the model answers: columns of the
// access table for a service (and optionally a client).
var tccQuery = regexp.MustCompile(`(?is)^\s*select\s+([a-z_,\s*]+?)\s+from\s+access\s+where\s+service\s*=\s*'([A-Za-z]+)'(?:\s+and\s+client\s*=\s*'([^']*)')?\s*;?\s*$`)

// cmdSqlite3 is `sqlite3 TCC.db "SELECT client,auth_value FROM access
// WHERE service='kTCCServiceAccessibility'"`: the way an image check
// reads the golden's TCC grants. sqlite3's list mode prints a row per
// line, columns separated by |; auth_value 2 is "allowed".
func (m *Mac) cmdSqlite3(_ context.Context, p *shell.Proc) int {
	args := cmdArgs(p)
	if len(args) != 2 {
		fmt.Fprintln(stderr(p), "sim: unsupported: sqlite3 DATABASE QUERY is the only form the simulated Mac answers")
		return 127
	}
	db, query := guestPath(p, args[0]), args[1]
	if db != tccDB {
		fmt.Fprintf(stderr(p), "sim: unsupported: sqlite3 on %s (the simulated Mac answers queries of %s only)\n", db, tccDB)
		return 127
	}
	if !p.Root {
		fmt.Fprintf(stderr(p), "Error: unable to open database \"%s\": authorization denied\n", args[0])
		return exitFailure
	}
	q := tccQuery.FindStringSubmatch(query)
	if q == nil {
		fmt.Fprintf(stderr(p), "sim: unsupported: sqlite3 query %q (SELECT columns FROM access WHERE service='…' [AND client='…'])\n", query)
		return 127
	}
	var cols []string
	for _, c := range strings.Split(q[1], ",") {
		c = strings.ToLower(strings.TrimSpace(c))
		switch c {
		case "client", "auth_value", "service", "client_type":
			cols = append(cols, c)
		case "*":
			cols = append(cols, "service", "client", "client_type", "auth_value")
		default:
			fmt.Fprintf(stderr(p), "sim: unsupported: column %s of TCC's access table\n", c)
			return 127
		}
	}
	grants, known := tccServices[q[2]]
	if !known {
		return exitOK // no row for a service nobody was granted
	}
	for _, client := range grants(&m.golden) {
		if q[3] != "" && q[3] != client {
			continue
		}
		var row []string
		for _, c := range cols {
			switch c {
			case "client":
				row = append(row, client)
			case "auth_value":
				row = append(row, "2")
			case "service":
				row = append(row, q[2])
			case "client_type":
				kind := "0" // a bundle ID
				if strings.HasPrefix(client, "/") {
					kind = "1" // an absolute path
				}
				row = append(row, kind)
			}
		}
		fmt.Fprintln(stdout(p), strings.Join(row, "|"))
	}
	return exitOK
}

// cmdDefaults is `defaults read /Library/Preferences/com.apple.loginwindow
// autoLoginUser`: who automatic login logs in, or the error defaults
// prints for a missing key.
func (m *Mac) cmdDefaults(_ context.Context, p *shell.Proc) int {
	args := cmdArgs(p)
	domain := "/Library/Preferences/com.apple.loginwindow"
	if len(args) != 3 || args[0] != "read" || (args[1] != domain && args[1] != domain+".plist") || args[2] != "autoLoginUser" {
		fmt.Fprintln(stderr(p), "sim: unsupported: defaults (the simulated Mac answers `defaults read "+domain+" autoLoginUser` only)")
		return 127
	}
	if m.golden.AutoLogin && !m.golden.FileVault {
		fmt.Fprintln(stdout(p), m.cfg.User)
		return exitOK
	}
	fmt.Fprintf(stderr(p), "\nThe domain/default pair of (%s, autoLoginUser) does not exist\n", args[1])
	return exitFailure
}
