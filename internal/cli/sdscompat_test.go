package cli

import (
	"flag"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/rosterhq/roster/internal/config"
)

func TestApplySDSCompat(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		check   func(*config.Config) string // "" when right
		wantErr string
	}{
		{name: "nothing set: PORT 8080 on all interfaces", check: func(c *config.Config) string {
			if c.SDSAddr != ":8080" || c.SDSHostTTL != 600*time.Second || c.Dev || c.SDSEnv != "development" {
				return "defaults changed"
			}
			return ""
		}},
		{name: "every variable", env: map[string]string{"HOST_TTL": "30", "CACHE_TTL": "5", "CACHE_TYPE": "simple",
			"BACKEND_STORAGE": "InMemory", "APPLICATION_ENV": "production", "LOG_LEVEL": "WARNING", "PORT": "9000"},
			check: func(c *config.Config) string {
				if c.SDSHostTTL != 30*time.Second || c.SDSCacheTTL != 5*time.Second || c.SDSCacheType != "simple" ||
					!c.Dev || c.SDSEnv != "production" || c.LogLevel != "warn" || c.SDSAddr != ":9000" {
					return "not applied"
				}
				return ""
			}},
		{name: "PORT keeps the configured host", args: []string{"-sds-addr=127.0.0.1:1"}, env: map[string]string{"PORT": "9000"},
			check: func(c *config.Config) string {
				if c.SDSAddr != "127.0.0.1:1" {
					return "an explicit -sds-addr lost to PORT"
				}
				return ""
			}},
		{name: "flags win", args: []string{"-sds-host-ttl=5s", "-log-level=error"}, env: map[string]string{"HOST_TTL": "30", "LOG_LEVEL": "DEBUG", "DEBUG": "true"},
			check: func(c *config.Config) string {
				if c.SDSHostTTL != 5*time.Second || c.LogLevel != "error" {
					return "a variable won over a flag"
				}
				return ""
			}},
		{name: "DEBUG true", env: map[string]string{"DEBUG": "True"}, check: func(c *config.Config) string {
			if c.LogLevel != "debug" {
				return "DEBUG=True did not turn on debug logs"
			}
			return ""
		}},
		{name: "DEBUG false is false", env: map[string]string{"DEBUG": "false"}, check: func(c *config.Config) string {
			if c.LogLevel != "info" {
				return "DEBUG=false turned on debug logs"
			}
			return ""
		}},
		{name: "InFile is the durable store", args: []string{"-dev"}, env: map[string]string{"BACKEND_STORAGE": "InFile"},
			check: func(c *config.Config) string {
				if !c.Dev {
					return "-dev lost to BACKEND_STORAGE"
				}
				return ""
			}},
		{name: "DynamoDB", env: map[string]string{"BACKEND_STORAGE": "DynamoDB"}, wantErr: "BACKEND_STORAGE: DynamoDB is not supported"},
		{name: "DynamoDB with -dev", args: []string{"-dev"}, env: map[string]string{"BACKEND_STORAGE": "DynamoDB"}, wantErr: "InFile"},
		{name: "plugin", env: map[string]string{"BACKEND_STORAGE": "HBase"}, wantErr: "InMemory"},
		{name: "HOST_TTL not a number", env: map[string]string{"HOST_TTL": "10m"}, wantErr: "HOST_TTL"},
		{name: "HOST_TTL zero", env: map[string]string{"HOST_TTL": "0"}, wantErr: "sds-host-ttl"},
		{name: "CACHE_TYPE redis", env: map[string]string{"CACHE_TYPE": "redis"}, wantErr: "CACHE_TYPE"},
		{name: "LOG_LEVEL loud", env: map[string]string{"LOG_LEVEL": "loud"}, wantErr: "LOG_LEVEL"},
		{name: "PORT word", env: map[string]string{"PORT": "http"}, wantErr: "PORT"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs := flag.NewFlagSet("agent", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			getenv := func(k string) string { return tc.env[k] }
			c, err := config.Load(fs, tc.args, getenv)
			if err != nil {
				t.Fatal(err)
			}
			_, err = applySDSCompat(c, tc.args, getenv)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one naming %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if msg := tc.check(c); msg != "" {
				t.Errorf("%s: %+v", msg, c)
			}
		})
	}
}
