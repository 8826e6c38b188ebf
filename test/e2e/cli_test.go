package e2e

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/rosterhq/roster/internal/testutil"
)

// oneLine fails the test unless s is exactly one non-empty line.
func oneLine(t *testing.T, what, s string) {
	t.Helper()
	if !strings.HasSuffix(s, "\n") || strings.Count(s, "\n") != 1 || strings.TrimSpace(s) == "" {
		t.Errorf("%s is not one line: %q", what, s)
	}
}

// closedAddr returns a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestCLI runs the binary as a command-line client against an agent: a
// sequence of commands with their exit codes and output, in order, since
// each builds on the state the one before left.
func TestCLI(t *testing.T) {
	ctx := bound(t)
	a := startAgent(t, testutil.AgentOptions{})
	down := closedAddr(t)
	var genID string // the ID the agent generated in "register without id"

	tests := []struct {
		name       string
		args       []string // {addr} is the agent's address, {down} one nobody listens on, {id} genID
		env        []string // extra environment, expanded like args
		wantCode   int
		wantStdout []string // regular expressions, each must match
		wantStderr []string
		oneLineErr bool // stderr must be exactly one line
		check      func(t *testing.T, r cliResult)
	}{
		{
			name:       "register",
			args:       []string{"register", "--service", "web", "--id", "web-1", "--address", "10.0.0.1", "--port", "80", "--tag", "a", "--ttl", "30s", "--http-addr", "{addr}"},
			wantStdout: []string{`^registered web/web-1 at 10\.0\.0\.1:80 \(passing, index \d+\)\n$`},
		},
		{
			name: "register without id prints JSON",
			args: []string{"register", "--service", "web", "--address", "10.0.0.2", "--port", "8080", "--meta", "v=2", "--json", "--http-addr", "{addr}"},
			check: func(t *testing.T, r cliResult) {
				var in instance
				if err := json.Unmarshal([]byte(r.stdout), &in); err != nil {
					t.Fatalf("register --json: %v: %q", err, r.stdout)
				}
				if in.ID == "" || in.Service != "web" || in.Port != 8080 || in.Meta["v"] != "2" {
					t.Fatalf("register --json printed %+v", in)
				}
				genID = in.ID
			},
		},
		{
			name:       "instances passing",
			args:       []string{"instances", "web", "--passing", "--http-addr", "{addr}"},
			wantStdout: []string{`(?m)^ID\s+ADDRESS\s+HEALTH`, `(?m)^web-1\s+10\.0\.0\.1:80\s+passing\s+1\s+0\s+-\s+a$`, `(?m)^{id}\s+10\.0\.0\.2:8080\s+passing`},
		},
		{
			name:       "instances with tag filter",
			args:       []string{"instances", "web", "--tag", "a", "--http-addr", "{addr}"},
			wantStdout: []string{`(?m)^web-1\s`},
			check: func(t *testing.T, r cliResult) {
				if strings.Contains(r.stdout, genID) {
					t.Errorf("--tag a lists %s, which has no tags:\n%s", genID, r.stdout)
				}
			},
		},
		{
			name: "instances json",
			args: []string{"instances", "web", "--json", "--http-addr", "{addr}"},
			check: func(t *testing.T, r cliResult) {
				var ans instancesAnswer
				if err := json.Unmarshal([]byte(r.stdout), &ans); err != nil {
					t.Fatalf("instances --json: %v: %q", err, r.stdout)
				}
				var ids []string
				for _, in := range ans.Instances {
					ids = append(ids, in.ID)
				}
				slices.Sort(ids)
				want := []string{genID, "web-1"}
				slices.Sort(want)
				if ans.Service != "web" || ans.Index == 0 || !slices.Equal(ids, want) {
					t.Errorf("instances --json: service %q index %d ids %v, want web, >0, %v", ans.Service, ans.Index, ids, want)
				}
			},
		},
		{
			name:       "services",
			args:       []string{"services", "--http-addr", "{addr}"},
			wantStdout: []string{`(?m)^SERVICE\s+INSTANCES\s+PASSING\s+WARNING\s+CRITICAL$`, `(?m)^web\s+2\s+2\s+0\s+0$`},
		},
		{
			name:       "deregister",
			args:       []string{"deregister", "web", "web-1", "--http-addr", "{addr}"},
			wantStdout: []string{`^deregistered web/web-1\n$`},
			check: func(t *testing.T, r cliResult) {
				if status, _ := getInstance(t, a, "web", "web-1"); status != 404 {
					t.Errorf("web-1 after deregister: GET answered %d, want 404", status)
				}
			},
		},
		{
			name:       "address from env",
			args:       []string{"services", "--json"},
			env:        []string{"ROSTER_HTTP_ADDR={addr}"},
			wantStdout: []string{`"name": "web"`},
		},
		{
			name:       "deregister unknown",
			args:       []string{"deregister", "web", "web-1", "--http-addr", "{addr}"},
			wantCode:   1,
			wantStderr: []string{`^roster deregister: .*not found.*404`},
			oneLineErr: true,
		},
		{
			name:       "port 0",
			args:       []string{"register", "--service", "web", "--address", "10.0.0.1", "--port", "0", "--http-addr", "{addr}"},
			wantCode:   1,
			wantStderr: []string{`^roster register: .*\bport\b`},
			oneLineErr: true,
		},
		{
			name:       "several bad fields in one line",
			args:       []string{"register", "--service", "web", "--address", "not an address", "--port", "70000", "--weight", "101", "--http-addr", "{addr}"},
			wantCode:   1,
			wantStderr: []string{`\baddress\b`, `\bport\b`, `\bweight\b`},
			oneLineErr: true,
		},
		{
			name:       "register without service",
			args:       []string{"register", "--address", "10.0.0.1", "--port", "80", "--http-addr", "{addr}"},
			wantCode:   2,
			wantStderr: []string{`--service is required`},
			oneLineErr: true,
		},
		{
			name:       "unknown command",
			args:       []string{"frobnicate"},
			wantCode:   2,
			wantStderr: []string{`unknown command "frobnicate"`},
			oneLineErr: true,
		},
		{
			name:     "unknown flag",
			args:     []string{"services", "--bogus", "--http-addr", "{addr}"},
			wantCode: 2,
		},
		{
			name:       "instances without a name",
			args:       []string{"instances", "--http-addr", "{addr}"},
			wantCode:   2,
			wantStderr: []string{`NAME`},
			oneLineErr: true,
		},
		{
			name:       "agent unreachable",
			args:       []string{"services", "--http-addr", "{down}"},
			wantCode:   1,
			wantStderr: []string{`^roster services: cannot reach agent`},
			oneLineErr: true,
		},
		{
			name:       "agent unreachable from env",
			args:       []string{"instances", "web"},
			env:        []string{"ROSTER_HTTP_ADDR={down}"},
			wantCode:   1,
			wantStderr: []string{`cannot reach agent at http://{down}`},
			oneLineErr: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			expand := func(s string) string {
				return strings.NewReplacer("{addr}", a.Addr, "{down}", down, "{id}", regexp.QuoteMeta(genID)).Replace(s)
			}
			args := make([]string, len(tc.args))
			for i, s := range tc.args {
				args[i] = strings.NewReplacer("{addr}", a.Addr, "{down}", down, "{id}", genID).Replace(s)
			}
			var env []string
			for _, s := range tc.env {
				env = append(env, strings.NewReplacer("{addr}", a.Addr, "{down}", down).Replace(s))
			}
			r := runCLIEnv(t, ctx, env, args...)
			if r.code != tc.wantCode {
				t.Fatalf("roster %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, tc.wantCode, r.stdout, r.stderr)
			}
			for _, re := range tc.wantStdout {
				if !regexp.MustCompile(expand(re)).MatchString(r.stdout) {
					t.Errorf("stdout does not match %s:\n%s", expand(re), r.stdout)
				}
			}
			for _, re := range tc.wantStderr {
				if !regexp.MustCompile(expand(re)).MatchString(r.stderr) {
					t.Errorf("stderr does not match %s:\n%s", expand(re), r.stderr)
				}
			}
			if tc.wantCode == 0 && r.stderr != "" {
				t.Errorf("stderr of a successful command: %q", r.stderr)
			}
			if tc.oneLineErr {
				oneLine(t, "stderr", r.stderr)
			}
			if tc.check != nil {
				tc.check(t, r)
			}
		})
	}

	t.Run("snapshot save and restore", func(t *testing.T) {
		register(t, a, "api", "api-1", map[string]any{"address": "10.0.1.1", "port": 9000, "zone": "eu1"})
		register(t, a, "db", "db-1", map[string]any{"address": "db.internal", "port": 5432, "tags": []string{"primary"}})
		file := filepath.Join(t.TempDir(), "roster.snap")
		r := runCLI(t, ctx, "snapshot", "save", file, "--http-addr", a.Addr)
		if r.code != 0 {
			t.Fatalf("snapshot save: exit %d: %s", r.code, r.stderr)
		}
		if fi, err := os.Stat(file); err != nil || fi.Size() == 0 {
			t.Fatalf("snapshot file: %v", err)
		}

		b := startAgent(t, testutil.AgentOptions{})
		register(t, b, "stale", "s-1", map[string]any{"address": "10.9.9.9", "port": 1})
		beforeTop := readyIndex(t, b)
		r = runCLI(t, ctx, "snapshot", "restore", file, "--http-addr", b.Addr)
		if r.code != 0 {
			t.Fatalf("snapshot restore: exit %d: %s", r.code, r.stderr)
		}
		if !regexp.MustCompile(`^restored snapshot from .* \(index \d+\)\n$`).MatchString(r.stdout) {
			t.Errorf("snapshot restore printed %q", r.stdout)
		}
		// The same content; every service's index moves past every
		// index this agent had (a restore never takes one back from
		// its watchers),
		// and instance indexes from a file ahead of this agent's log
		// are re-based below the restore's own index (ARCHITECTURE.md,
		// the durable format), so they are compared without them.
		want, got := fullState(t, a), fullState(t, b)
		if d := diffState(withoutInstanceIndexes(withoutServiceIndexes(want)), withoutInstanceIndexes(withoutServiceIndexes(got))); d != "" {
			t.Errorf("restored agent differs from the saved one:\n%s", d)
		}
		svcs, _ := listServices(t, b)
		for _, s := range svcs.Services {
			if s.ModifyIndex <= beforeTop {
				t.Errorf("service %s has index %d after restore, not past the restored agent's %d before it", s.Name, s.ModifyIndex, beforeTop)
			}
		}

		// A bad file is refused and changes nothing.
		restored := fullState(t, b)
		garbage := filepath.Join(t.TempDir(), "garbage.snap")
		if err := os.WriteFile(garbage, []byte("{\"version\":1,\"indexes\":{}}\nthis is not a snapshot\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{garbage, filepath.Join(t.TempDir(), "missing.snap")} {
			r = runCLI(t, ctx, "snapshot", "restore", f, "--http-addr", b.Addr)
			if r.code == 0 {
				t.Errorf("snapshot restore %s: exit 0, want failure; stdout %q", filepath.Base(f), r.stdout)
			}
			oneLine(t, "stderr of a failed restore", r.stderr)
			if d := diffState(restored, fullState(t, b)); d != "" {
				t.Errorf("restoring %s changed the registry:\n%s", filepath.Base(f), d)
			}
		}
	})
}

var instanceIndexes = regexp.MustCompile(`"(create_index|modify_index)":\d+`)

// withoutInstanceIndexes blanks the instances' create and modify indexes.
func withoutInstanceIndexes(st map[string]string) map[string]string {
	out := make(map[string]string, len(st))
	for k, v := range st {
		out[k] = instanceIndexes.ReplaceAllString(v, `"$1":_`)
	}
	return out
}
