package config_test

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rosterhq/roster/internal/config"
)

// load runs Load with a fresh flag set, the given args, environment and
// (when file is not empty) a config file with that content.
func load(t testing.TB, args []string, env map[string]string, file string) (*config.Config, error) {
	t.Helper()
	if file != "" {
		path := filepath.Join(t.TempDir(), "roster.json")
		if err := os.WriteFile(path, []byte(file), 0o600); err != nil {
			t.Fatal(err)
		}
		args = append([]string{"-config-file", path}, args...)
	}
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return config.Load(fs, args, func(k string) string { return env[k] })
}

func TestLoadDefaults(t *testing.T) {
	c, err := load(t, nil, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	if want := config.Default(); !reflect.DeepEqual(*c, want) {
		t.Errorf("Load with nothing = %+v, want the defaults %+v", *c, want)
	}
	if c.NodeName == "" {
		t.Error("default NodeName is empty")
	}
}

func TestLoadPrecedence(t *testing.T) {
	settings := []struct {
		name string // flag name
		// values as a file JSON value, an environment value and a flag value
		file, env, flag string
		get             func(*config.Config) any
		// want values for file, env and flag
		fromFile, fromEnv, fromFlag any
	}{
		{"http-addr", `"127.0.0.1:1"`, "127.0.0.1:2", "127.0.0.1:3", func(c *config.Config) any { return c.HTTPAddr },
			"127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"},
		{"data-dir", `"/file"`, "/env", "/flag", func(c *config.Config) any { return c.DataDir }, "/file", "/env", "/flag"},
		{"node-name", `"f"`, "e", "l", func(c *config.Config) any { return c.NodeName }, "f", "e", "l"},
		{"log-level", `"debug"`, "warn", "error", func(c *config.Config) any { return c.LogLevel }, "debug", "warn", "error"},
		{"log-format", `"json"`, "text", "json", func(c *config.Config) any { return c.LogFormat }, "json", "text", "json"},
		{"dev", `true`, "false", "true", func(c *config.Config) any { return c.Dev }, true, false, true},
		{"snapshot-interval", `"1m"`, "2m", "3m", func(c *config.Config) any { return c.SnapshotInterval }, time.Minute, 2 * time.Minute, 3 * time.Minute},
		{"snapshot-threshold", `100`, "200", "300", func(c *config.Config) any { return c.SnapshotThreshold }, uint64(100), uint64(200), uint64(300)},
		{"trailing-logs", `7`, "8", "9", func(c *config.Config) any { return c.TrailingLogs }, uint64(7), uint64(8), uint64(9)},
		{"recover-from-snapshot", `true`, "false", "true", func(c *config.Config) any { return c.RecoverFromSnapshot }, true, false, true},
		{"lease-guard-fraction", `0.25`, "0.75", "1", func(c *config.Config) any { return c.LeaseGuardFraction }, 0.25, 0.75, 1.0},
		{"lease-guard-min", `3`, "4", "5", func(c *config.Config) any { return c.LeaseGuardMin }, 3, 4, 5},
		{"shutdown-timeout", `"1s"`, "2s", "3s", func(c *config.Config) any { return c.ShutdownTimeout }, time.Second, 2 * time.Second, 3 * time.Second},
		{"sds-host-ttl", `"1s"`, "2s", "3s", func(c *config.Config) any { return c.SDSHostTTL }, time.Second, 2 * time.Second, 3 * time.Second},
		{"sds-cache-type", `"simple"`, "null", "simple", func(c *config.Config) any { return c.SDSCacheType }, "simple", "null", "simple"},
		{"sds-trusted-proxies", `"10.0.0.1"`, "10.0.0.2/32", "::1", func(c *config.Config) any { return c.SDSTrustedProxies }, "10.0.0.1", "10.0.0.2/32", "::1"},
		{"dns-addr", `"127.0.0.1:1"`, "off", "127.0.0.1:3", func(c *config.Config) any { return c.DNSAddr }, "127.0.0.1:1", "off", "127.0.0.1:3"},
		{"dns-ttl", `"1s"`, "2s", "3s", func(c *config.Config) any { return c.DNSTTL }, time.Second, 2 * time.Second, 3 * time.Second},
		{"dns-max-answers", `7`, "8", "9", func(c *config.Config) any { return c.DNSMaxAnswers }, 7, 8, 9},
		{"bootstrap-expect", `3`, "5", "3", func(c *config.Config) any { return c.BootstrapExpect }, 3, 5, 3},
		{"join", `"10.0.0.1:8300"`, "10.0.0.2:8300", "10.0.0.3:8300", func(c *config.Config) any { return c.Join }, "10.0.0.1:8300", "10.0.0.2:8300", "10.0.0.3:8300"},
		{"dead-server-after", `"1h"`, "0", "2s", func(c *config.Config) any { return c.DeadServerAfter }, time.Hour, time.Duration(0), 2 * time.Second},
		{"min-servers", `5`, "1", "3", func(c *config.Config) any { return c.MinServers }, 5, 1, 3},
		{"max-stale", `"10s"`, "1m", "0s", func(c *config.Config) any { return c.MaxStale }, 10 * time.Second, time.Minute, time.Duration(0)},
	}
	for _, s := range settings {
		key := strings.ReplaceAll(s.name, "-", "_")
		envName := "ROSTER_" + strings.ToUpper(key)
		file := `{"` + key + `":` + s.file + `}`
		def := s.get(ptr(config.Default()))
		cases := []struct {
			name string
			file string
			env  map[string]string
			args []string
			want any
		}{
			{name: "default", want: def},
			{name: "file over default", file: file, want: s.fromFile},
			{name: "env over file", file: file, env: map[string]string{envName: s.env}, want: s.fromEnv},
			{name: "env over default", env: map[string]string{envName: s.env}, want: s.fromEnv},
			{name: "flag over env and file", file: file, env: map[string]string{envName: s.env}, args: []string{"-" + s.name + "=" + s.flag}, want: s.fromFlag},
			{name: "flag over file", file: file, args: []string{"-" + s.name + "=" + s.flag}, want: s.fromFlag},
			{name: "empty env is unset", file: file, env: map[string]string{envName: ""}, want: s.fromFile},
		}
		for _, tc := range cases {
			t.Run(s.name+"/"+tc.name, func(t *testing.T) {
				c, err := load(t, tc.args, tc.env, tc.file)
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				if got := s.get(c); !reflect.DeepEqual(got, tc.want) {
					t.Errorf("%s = %v (%T), want %v (%T)", s.name, got, got, tc.want, tc.want)
				}
			})
		}
	}
}

func ptr[T any](v T) *T { return &v }

func TestLoadExplicitDefaultFlagWins(t *testing.T) {
	// A flag given on the command line wins even when it repeats the default.
	c, err := load(t, []string{"-log-level=info"}, map[string]string{"ROSTER_LOG_LEVEL": "debug"}, `{"log_level":"warn"}`)
	if err != nil {
		t.Fatal(err)
	}
	if c.LogLevel != "info" {
		t.Errorf("LogLevel %q, want the flag's info", c.LogLevel)
	}
}

func TestLoadConfigFileFromEnv(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.json")
	if err := os.WriteFile(path, []byte(`{"node_name":"from-file"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := load(t, nil, map[string]string{"ROSTER_CONFIG_FILE": path}, "")
	if err != nil {
		t.Fatal(err)
	}
	if c.NodeName != "from-file" {
		t.Errorf("NodeName %q, want from-file", c.NodeName)
	}
	// The flag names the file over the environment.
	other := filepath.Join(t.TempDir(), "d.json")
	if err := os.WriteFile(other, []byte(`{"node_name":"from-flag-file"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err = load(t, []string{"-config-file", other}, map[string]string{"ROSTER_CONFIG_FILE": path}, "")
	if err != nil {
		t.Fatal(err)
	}
	if c.NodeName != "from-flag-file" {
		t.Errorf("NodeName %q, want from-flag-file", c.NodeName)
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		file string
		// want are substrings of the error.
		want []string
	}{
		{name: "unknown file key", file: `{"http_addr":"127.0.0.1:1","colour":"blue"}`, want: []string{"unknown key", `"colour"`}},
		{name: "config_file in the file", file: `{"config_file":"/x"}`, want: []string{"unknown key", "config_file"}},
		{name: "file not JSON", file: `http_addr = "x"`, want: []string{"config file"}},
		{name: "file not an object", file: `[1]`, want: []string{"config file"}},
		{name: "file value of the wrong kind", file: `{"snapshot_interval":30}`, want: []string{"snapshot_interval"}},
		{name: "file bool not a bool", file: `{"dev":"maybe"}`, want: []string{"dev"}},
		{name: "file object value", file: `{"lease_guard_min":{"n":1}}`, want: []string{"lease_guard_min"}},
		{name: "missing file", args: []string{"-config-file", "/nonexistent/roster.json"}, want: []string{"config file"}},
		{name: "env bad duration", env: map[string]string{"ROSTER_SNAPSHOT_INTERVAL": "often"}, want: []string{"ROSTER_SNAPSHOT_INTERVAL"}},
		{name: "env bad int", env: map[string]string{"ROSTER_LEASE_GUARD_MIN": "x"}, want: []string{"ROSTER_LEASE_GUARD_MIN"}},
		{name: "env errors all listed", env: map[string]string{"ROSTER_LEASE_GUARD_MIN": "x", "ROSTER_DEV": "perhaps"},
			want: []string{"ROSTER_LEASE_GUARD_MIN", "ROSTER_DEV"}},
		{name: "unknown flag", args: []string{"-colour=blue"}, want: []string{"colour"}},
		{name: "bad flag value", args: []string{"-trailing-logs=-1"}, want: []string{"trailing-logs"}},
		{name: "invalid after merge", file: `{"log_level":"loud"}`, want: []string{"log-level"}},
		{name: "sds host ttl too short", args: []string{"-sds-host-ttl=500ms"}, want: []string{"sds-host-ttl"}},
		{name: "sds cache type", args: []string{"-sds-cache-type=redis"}, want: []string{"sds-cache-type"}},
		{name: "sds trusted proxies", args: []string{"-sds-trusted-proxies=10.0.0.0/33"}, want: []string{"sds-trusted-proxies"}},
		{name: "sds auto ip nets", args: []string{"-sds-auto-ip-nets=lan"}, want: []string{"sds-auto-ip-nets"}},
		{name: "dns addr without port", args: []string{"-dns-addr=127.0.0.1"}, want: []string{"dns-addr"}},
		{name: "dns negative max answers", args: []string{"-dns-max-answers=-1"}, want: []string{"dns-max-answers"}},
		{name: "dns recursor allow", args: []string{"-dns-recursor-allow=lan"}, want: []string{"dns-recursor-allow"}},
		{name: "dns recursors allowed to no one", args: []string{"-dns-recursors=10.0.0.53", "-dns-recursor-allow="}, want: []string{"dns-recursor-allow"}},
		{name: "raft addr without -server", args: []string{"-raft-addr=127.0.0.1:8300"}, want: []string{"raft-addr", "-server"}},
		{name: "raft tls incomplete", args: []string{"-server", "-raft-tls-cert=c.pem"}, want: []string{"raft-tls"}},
		{name: "join without port", args: []string{"-join=10.0.0.1"}, want: []string{"join", "10.0.0.1"}},
		{name: "negative bootstrap expect", args: []string{"-bootstrap-expect=-1"}, want: []string{"bootstrap-expect"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := load(t, tc.args, tc.env, tc.file)
			if err == nil {
				t.Fatal("Load succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

// TestLoadFileNull: a null in the config file is "not set", not the
// string "<nil>".
//
// Regression test (fixed): applyFile (config.go) passes every value through fmt.Sprint, so
// {"data_dir": null} sets DataDir to the literal "<nil>" (and Validate
// accepts it: the agent then writes its log to ./<nil>), {"node_name":
// null} names the node "<nil>". A null should leave the setting alone
// (or be an error naming the key); likewise arrays and objects should be
// refused by kind rather than by whatever their Sprint form parses as.
func TestLoadFileNull(t *testing.T) {
	for _, key := range []string{"data_dir", "node_name", "http_addr"} {
		t.Run(key, func(t *testing.T) {
			c, err := load(t, nil, nil, `{"`+key+`":null}`)
			if err != nil {
				if !strings.Contains(err.Error(), key) && !strings.Contains(err.Error(), strings.ReplaceAll(key, "_", "-")) {
					t.Errorf("error %q does not name %s", err, key)
				}
				return
			}
			def := config.Default()
			got := map[string]string{"data_dir": c.DataDir, "node_name": c.NodeName, "http_addr": c.HTTPAddr}[key]
			want := map[string]string{"data_dir": def.DataDir, "node_name": def.NodeName, "http_addr": def.HTTPAddr}[key]
			if got != want {
				t.Errorf("%s: null set %q, want the default %q (or an error)", key, got, want)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(c *config.Config)
		// want is the setting the error must start with; "" means valid.
		want string
	}{
		{"defaults", func(c *config.Config) {}, ""},
		{"dev without data dir", func(c *config.Config) { c.Dev, c.DataDir = true, "" }, ""},
		{"no data dir", func(c *config.Config) { c.DataDir = "" }, "data-dir"},
		{"http addr without port", func(c *config.Config) { c.HTTPAddr = "localhost" }, "http-addr"},
		{"http addr empty", func(c *config.Config) { c.HTTPAddr = "" }, "http-addr"},
		{"http addr ipv6", func(c *config.Config) { c.HTTPAddr = "[::1]:0" }, ""},
		{"log level", func(c *config.Config) { c.LogLevel = "verbose" }, "log-level"},
		{"log level case", func(c *config.Config) { c.LogLevel = "INFO" }, "log-level"},
		{"log format", func(c *config.Config) { c.LogFormat = "xml" }, "log-format"},
		{"node name", func(c *config.Config) { c.NodeName = "" }, "node-name"},
		{"snapshot interval", func(c *config.Config) { c.SnapshotInterval = 999 * time.Millisecond }, "snapshot-interval"},
		{"snapshot interval 1s", func(c *config.Config) { c.SnapshotInterval = time.Second }, ""},
		{"snapshot threshold", func(c *config.Config) { c.SnapshotThreshold = 0 }, "snapshot-threshold"},
		{"lease guard fraction zero", func(c *config.Config) { c.LeaseGuardFraction = 0 }, "lease-guard-fraction"},
		{"lease guard fraction negative", func(c *config.Config) { c.LeaseGuardFraction = -0.5 }, "lease-guard-fraction"},
		{"lease guard fraction one disables", func(c *config.Config) { c.LeaseGuardFraction = 1 }, ""},
		{"lease guard min", func(c *config.Config) { c.LeaseGuardMin = 0 }, "lease-guard-min"},
		{"shutdown timeout", func(c *config.Config) { c.ShutdownTimeout = 0 }, "shutdown-timeout"},
		{"datacenter empty", func(c *config.Config) { c.Datacenter = "" }, "datacenter"},
		{"datacenter with a dot", func(c *config.Config) { c.Datacenter = "eu.1" }, "datacenter"},
		{"datacenter", func(c *config.Config) { c.Datacenter = "eu_west-1" }, ""},
		{"xds off", func(c *config.Config) { c.XDSAddr = "off" }, ""},
		{"xds addr without port", func(c *config.Config) { c.XDSAddr = "localhost" }, "xds-addr"},
		{"xds warning", func(c *config.Config) { c.XDSWarning = "drop" }, "xds-warning"},
		{"xds warning omit", func(c *config.Config) { c.XDSWarning = "omit" }, ""},
		{"proxy addr", func(c *config.Config) { c.ProxyAddr = "127.0.0.1:8080" }, ""},
		{"proxy addr without port", func(c *config.Config) { c.ProxyAddr = "localhost" }, "proxy-addr"},
		{"dead server after off", func(c *config.Config) { c.DeadServerAfter = 0 }, ""},
		{"dead server after negative", func(c *config.Config) { c.DeadServerAfter = -time.Second }, "dead-server-after"},
		{"min servers zero", func(c *config.Config) { c.MinServers = 0 }, "min-servers"},
		{"min servers one", func(c *config.Config) { c.MinServers = 1 }, ""},
		{"max stale", func(c *config.Config) { c.MaxStale = 5 * time.Second }, ""},
		{"max stale negative", func(c *config.Config) { c.MaxStale = -time.Second }, "max-stale"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := config.Default()
			tc.mutate(&c)
			err := c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("Validate = %v, want nil", err)
			case tc.want != "" && err == nil:
				t.Errorf("Validate = nil, want an error naming %s", tc.want)
			case tc.want != "" && !strings.HasPrefix(err.Error(), tc.want+":"):
				t.Errorf("Validate = %q, want it to start with %q", err, tc.want+":")
			}
		})
	}
}

// FuzzConfigFile loads arbitrary config files: Load never panics, and a
// config it returns without error is valid.
func FuzzConfigFile(f *testing.F) {
	for _, s := range []string{
		`{}`, `{"http_addr":"127.0.0.1:8500","dev":true}`, `{"snapshot_interval":"30s","lease_guard_fraction":0.5}`,
		`{"lease_guard_min":1e3}`, `{"trailing_logs":-1}`, `{"x":1}`, `null`, `[]`, `{"dev":null}`, `{"data_dir":["a"]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, file []byte) {
		path := filepath.Join(t.TempDir(), "c.json")
		if err := os.WriteFile(path, file, 0o600); err != nil {
			t.Fatal(err)
		}
		fs := flag.NewFlagSet("agent", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		c, err := config.Load(fs, []string{"-config-file", path}, func(string) string { return "" })
		if err != nil {
			return
		}
		if verr := c.Validate(); verr != nil {
			t.Fatalf("Load returned a config that fails Validate: %v", verr)
		}
	})
}

func TestParseBytes(t *testing.T) {
	tests := []struct {
		in      string
		want    int64
		wantErr bool
	}{
		{"", 0, false},
		{"150MiB", 150 << 20, false},
		{"1GiB", 1 << 30, false},
		{"500MB", 500e6, false},
		{"4096", 4096, false},
		{"64KiB", 64 << 10, false},
		{"lots", 0, true},
		{"-5MiB", 0, true},
		{"0", 0, true},
		{"MiB", 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := config.ParseBytes(tc.in)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("ParseBytes(%q) = %d, %v; want %d, err %v", tc.in, got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestParsePrefixes(t *testing.T) {
	tests := []struct {
		in, want string // want: the prefixes joined by ",", or "error"
	}{
		{"", ""},
		{"127.0.0.0/8, ::1", "127.0.0.0/8,::1/128"},
		{"10.1.2.3/8,::ffff:10.0.0.1", "10.0.0.0/8,10.0.0.1/32"},
		{"10.0.0.0/33", "error"},
		{"lan", "error"},
	}
	for _, tc := range tests {
		ps, err := config.ParsePrefixes(tc.in)
		got := "error"
		if err == nil {
			s := make([]string, len(ps))
			for i, p := range ps {
				s[i] = p.String()
			}
			got = strings.Join(s, ",")
		}
		if got != tc.want {
			t.Errorf("ParsePrefixes(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
