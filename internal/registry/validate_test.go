package registry_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rosterhq/roster/internal/registry"
)

// validInstance is a minimal instance that passes Normalize.
func validInstance() *registry.Instance {
	return &registry.Instance{Service: "web", ID: "web-1", Address: "10.0.0.1", Port: 8080}
}

// fieldsOf returns the offending field names of err, in order; nil when err
// is nil. It fails the test when err is not a *ValidationError.
func fieldsOf(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		return nil
	}
	var v *registry.ValidationError
	if !errors.As(err, &v) {
		t.Fatalf("error %v (%T) is not a *registry.ValidationError", err, err)
	}
	out := make([]string, len(v.Fields))
	for i, f := range v.Fields {
		out[i] = f.Field
		if f.Message == "" {
			t.Errorf("field %q has no message", f.Field)
		}
	}
	return out
}

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestNormalize(t *testing.T) {
	dur := func(d time.Duration) registry.Duration { return registry.Duration(d) }
	ttlCheck := func(ttl time.Duration) registry.Check {
		return registry.Check{Type: registry.CheckTTL, TTL: dur(ttl)}
	}
	active := func(typ registry.CheckType, target string) registry.Check {
		return registry.Check{Type: typ, Target: target}
	}
	tags := func(n, size int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = strings.Repeat("t", size-len(strconv.Itoa(i))) + strconv.Itoa(i)
		}
		return out
	}
	meta := func(n int) map[string]string {
		out := map[string]string{}
		for i := range n {
			out["k"+strconv.Itoa(i)] = "v"
		}
		return out
	}

	tests := []struct {
		name   string
		mutate func(in *registry.Instance)
		// want is the list of offending fields, in the order reported
		// (sorted by name); nil means valid.
		want []string
		// check inspects the normalised instance.
		check func(t *testing.T, in *registry.Instance)
	}{
		{
			name:   "minimal instance gets defaults",
			mutate: func(in *registry.Instance) {},
			check: func(t *testing.T, in *registry.Instance) {
				if in.Weight != registry.DefaultWeight {
					t.Errorf("Weight = %d, want default %d", in.Weight, registry.DefaultWeight)
				}
				if in.Health != registry.Passing {
					t.Errorf("Health = %q, want passing", in.Health)
				}
			},
		},
		{
			name: "indexes and health are reset",
			mutate: func(in *registry.Instance) {
				in.CreateIndex, in.ModifyIndex, in.Health = 7, 9, registry.Critical
			},
			check: func(t *testing.T, in *registry.Instance) {
				if in.CreateIndex != 0 || in.ModifyIndex != 0 || in.Health != registry.Passing {
					t.Errorf("got create %d modify %d health %q, want 0 0 passing", in.CreateIndex, in.ModifyIndex, in.Health)
				}
			},
		},
		{
			name:   "missing id is generated",
			mutate: func(in *registry.Instance) { in.ID = "" },
			check: func(t *testing.T, in *registry.Instance) {
				if !uuidRE.MatchString(in.ID) {
					t.Errorf("generated ID %q is not a v4 UUID", in.ID)
				}
			},
		},

		// service
		{name: "service upper case is folded", mutate: func(in *registry.Instance) { in.Service = "Web-API" },
			check: func(t *testing.T, in *registry.Instance) {
				if in.Service != "web-api" {
					t.Errorf("Service = %q, want web-api", in.Service)
				}
			}},
		{name: "service 63 chars", mutate: func(in *registry.Instance) { in.Service = strings.Repeat("a", 63) }},
		{name: "service 64 chars", mutate: func(in *registry.Instance) { in.Service = strings.Repeat("a", 64) }, want: []string{"service"}},
		{name: "service empty", mutate: func(in *registry.Instance) { in.Service = "" }, want: []string{"service"}},
		{name: "service leading hyphen", mutate: func(in *registry.Instance) { in.Service = "-web" }, want: []string{"service"}},
		{name: "service trailing hyphen", mutate: func(in *registry.Instance) { in.Service = "web-" }, want: []string{"service"}},
		{name: "service underscore", mutate: func(in *registry.Instance) { in.Service = "web_api" }, want: []string{"service"}},
		{name: "service dot", mutate: func(in *registry.Instance) { in.Service = "web.api" }, want: []string{"service"}},
		{name: "service digits only", mutate: func(in *registry.Instance) { in.Service = "123" }},

		// id
		{name: "id full charset", mutate: func(in *registry.Instance) { in.ID = "aZ09-_.:@+~" }},
		{name: "id 128 chars", mutate: func(in *registry.Instance) { in.ID = strings.Repeat("i", 128) }},
		{name: "id 129 chars", mutate: func(in *registry.Instance) { in.ID = strings.Repeat("i", 129) }, want: []string{"id"}},
		{name: "id slash", mutate: func(in *registry.Instance) { in.ID = "a/b" }, want: []string{"id"}},
		{name: "id space", mutate: func(in *registry.Instance) { in.ID = "a b" }, want: []string{"id"}},
		{name: "id non-ascii", mutate: func(in *registry.Instance) { in.ID = "café" }, want: []string{"id"}},

		// address
		{name: "address ipv4", mutate: func(in *registry.Instance) { in.Address = "192.168.1.10" }},
		{name: "address ipv6", mutate: func(in *registry.Instance) { in.Address = "2001:db8::1" }},
		{name: "address ipv4-mapped ipv6", mutate: func(in *registry.Instance) { in.Address = "::ffff:10.0.0.1" }},
		{name: "address hostname", mutate: func(in *registry.Instance) { in.Address = "Node-1.Example.com" }},
		{name: "address fqdn with trailing dot", mutate: func(in *registry.Instance) { in.Address = "node-1.example.com." }},
		{name: "address missing", mutate: func(in *registry.Instance) { in.Address = "" }, want: []string{"address"}},
		{name: "address ipv6 with zone", mutate: func(in *registry.Instance) { in.Address = "fe80::1%eth0" }, want: []string{"address"}},
		{name: "address bracketed ipv6", mutate: func(in *registry.Instance) { in.Address = "[::1]" }, want: []string{"address"}},
		{name: "address host:port", mutate: func(in *registry.Instance) { in.Address = "10.0.0.1:80" }, want: []string{"address"}},
		{name: "address bad ipv6", mutate: func(in *registry.Instance) { in.Address = "2001:db8::zz" }, want: []string{"address"}},
		{name: "address empty label", mutate: func(in *registry.Instance) { in.Address = "a..b" }, want: []string{"address"}},
		{name: "address underscore", mutate: func(in *registry.Instance) { in.Address = "host_name" }, want: []string{"address"}},
		{name: "address label 64 chars", mutate: func(in *registry.Instance) { in.Address = strings.Repeat("a", 64) + ".com" }, want: []string{"address"}},
		{name: "address 254 chars", mutate: func(in *registry.Instance) {
			in.Address = strings.Repeat(strings.Repeat("a", 62)+".", 4) + "ab" // 254
		}, want: []string{"address"}},
		{name: "address url", mutate: func(in *registry.Instance) { in.Address = "http://x" }, want: []string{"address"}},

		// port
		{name: "port 1", mutate: func(in *registry.Instance) { in.Port = 1 }},
		{name: "port 65535", mutate: func(in *registry.Instance) { in.Port = 65535 }},
		{name: "port 0", mutate: func(in *registry.Instance) { in.Port = 0 }, want: []string{"port"}},
		{name: "port 65536", mutate: func(in *registry.Instance) { in.Port = 65536 }, want: []string{"port"}},
		{name: "port negative", mutate: func(in *registry.Instance) { in.Port = -1 }, want: []string{"port"}},

		// weight
		{name: "weight 1", mutate: func(in *registry.Instance) { in.Weight = 1 }},
		{name: "weight 100", mutate: func(in *registry.Instance) { in.Weight = 100 }},
		{name: "weight 101", mutate: func(in *registry.Instance) { in.Weight = 101 }, want: []string{"weight"}},
		{name: "weight negative", mutate: func(in *registry.Instance) { in.Weight = -1 }, want: []string{"weight"}},

		// priority
		{name: "priority 0", mutate: func(in *registry.Instance) { in.Priority = 0 }},
		{name: "priority 65535", mutate: func(in *registry.Instance) { in.Priority = 65535 }},
		{name: "priority negative", mutate: func(in *registry.Instance) { in.Priority = -1 }, want: []string{"priority"}},
		{name: "priority 65536", mutate: func(in *registry.Instance) { in.Priority = 65536 }, want: []string{"priority"}},

		// zone and region
		{name: "zone folded", mutate: func(in *registry.Instance) { in.Zone, in.Region = "US-East-1a", "EU" },
			check: func(t *testing.T, in *registry.Instance) {
				if in.Zone != "us-east-1a" || in.Region != "eu" {
					t.Errorf("zone %q region %q, want lower case", in.Zone, in.Region)
				}
			}},
		{name: "zone empty allowed", mutate: func(in *registry.Instance) { in.Zone = "" }},
		{name: "zone not a label", mutate: func(in *registry.Instance) { in.Zone = "us_east" }, want: []string{"zone"}},
		{name: "zone 64 chars", mutate: func(in *registry.Instance) { in.Zone = strings.Repeat("z", 64) }, want: []string{"zone"}},
		{name: "region not a label", mutate: func(in *registry.Instance) { in.Region = "eu.west" }, want: []string{"region"}},

		// revision, repo
		{name: "revision 256", mutate: func(in *registry.Instance) { in.Revision = strings.Repeat("r", 256) }},
		{name: "revision 257", mutate: func(in *registry.Instance) { in.Revision = strings.Repeat("r", 257) }, want: []string{"revision"}},
		{name: "revision control char", mutate: func(in *registry.Instance) { in.Revision = "a\nb" }, want: []string{"revision"}},
		{name: "repo DEL char", mutate: func(in *registry.Instance) { in.Repo = "git\x7f" }, want: []string{"repo"}},

		// tags
		{name: "tags 64 of 255 chars", mutate: func(in *registry.Instance) { in.Tags = tags(64, 255) }},
		{name: "tags 65", mutate: func(in *registry.Instance) { in.Tags = tags(65, 3) }, want: []string{"tags"}},
		{name: "tag empty", mutate: func(in *registry.Instance) { in.Tags = []string{"ok", ""} }, want: []string{"tags[1]"}},
		{name: "tag 256 chars", mutate: func(in *registry.Instance) { in.Tags = []string{strings.Repeat("t", 256)} }, want: []string{"tags[0]"}},
		{name: "tag control char", mutate: func(in *registry.Instance) { in.Tags = []string{"a", "b", "c\x00"} }, want: []string{"tags[2]"}},
		{name: "tags several bad", mutate: func(in *registry.Instance) { in.Tags = []string{"", "ok", "\t"} }, want: []string{"tags[0]", "tags[2]"}},

		// meta
		{name: "meta 64 keys", mutate: func(in *registry.Instance) { in.Meta = meta(64) }},
		{name: "meta 65 keys", mutate: func(in *registry.Instance) { in.Meta = meta(65) }, want: []string{"meta"}},
		{name: "meta key charset", mutate: func(in *registry.Instance) { in.Meta = map[string]string{"a.B_c-9": "v"} }},
		{name: "meta key space", mutate: func(in *registry.Instance) { in.Meta = map[string]string{"a b": "v"} }, want: []string{"meta.a b"}},
		{name: "meta key empty", mutate: func(in *registry.Instance) { in.Meta = map[string]string{"": "v"} }, want: []string{"meta."}},
		{name: "meta key 129 chars", mutate: func(in *registry.Instance) { in.Meta = map[string]string{strings.Repeat("k", 129): "v"} },
			want: []string{"meta." + strings.Repeat("k", 129)}},
		{name: "meta value 512", mutate: func(in *registry.Instance) { in.Meta = map[string]string{"k": strings.Repeat("v", 512)} }},
		{name: "meta value 513", mutate: func(in *registry.Instance) { in.Meta = map[string]string{"k": strings.Repeat("v", 513)} }, want: []string{"meta.k"}},
		{name: "meta value empty allowed", mutate: func(in *registry.Instance) { in.Meta = map[string]string{"k": ""} }},
		{name: "meta bad key and value", mutate: func(in *registry.Instance) { in.Meta = map[string]string{"a/b": "\x01"} }, want: []string{"meta.a/b", "meta.a/b"}},

		// checks: ttl
		{name: "ttl 1s", mutate: func(in *registry.Instance) { in.Checks = []registry.Check{ttlCheck(time.Second)} },
			check: func(t *testing.T, in *registry.Instance) {
				c := in.Checks[0]
				if c.ID != registry.TTLCheckID || c.Status != registry.Passing {
					t.Errorf("ttl check id %q status %q, want %q passing", c.ID, c.Status, registry.TTLCheckID)
				}
				if c.Interval != 0 || c.Timeout != 0 || c.FailuresBeforeCritical != 0 {
					t.Errorf("ttl check got active defaults: %+v", c)
				}
			}},
		{name: "ttl 24h", mutate: func(in *registry.Instance) { in.Checks = []registry.Check{ttlCheck(24 * time.Hour)} }},
		{name: "ttl 999ms", mutate: func(in *registry.Instance) { in.Checks = []registry.Check{ttlCheck(999 * time.Millisecond)} }, want: []string{"checks[0].ttl"}},
		{name: "ttl missing", mutate: func(in *registry.Instance) { in.Checks = []registry.Check{ttlCheck(0)} }, want: []string{"checks[0].ttl"}},
		{name: "ttl over 24h", mutate: func(in *registry.Instance) { in.Checks = []registry.Check{ttlCheck(24*time.Hour + 1)} }, want: []string{"checks[0].ttl"}},
		{name: "ttl with target", mutate: func(in *registry.Instance) {
			c := ttlCheck(time.Minute)
			c.Target = "10.0.0.1:80"
			in.Checks = []registry.Check{c}
		}, want: []string{"checks[0].target"}},
		{name: "ttl critical given keeps status and critical_since", mutate: func(in *registry.Instance) {
			c := ttlCheck(time.Minute)
			c.Status, c.CriticalSince = registry.Critical, time.Unix(100, 0)
			in.Checks = []registry.Check{c}
		}, check: func(t *testing.T, in *registry.Instance) {
			if c := in.Checks[0]; c.Status != registry.Critical || c.CriticalSince.IsZero() || in.Health != registry.Critical {
				t.Errorf("check %+v health %q, want critical with critical_since", c, in.Health)
			}
		}},
		{name: "critical_since cleared unless critical", mutate: func(in *registry.Instance) {
			c := ttlCheck(time.Minute)
			c.Status, c.CriticalSince = registry.Warning, time.Unix(100, 0)
			in.Checks = []registry.Check{c}
		}, check: func(t *testing.T, in *registry.Instance) {
			if c := in.Checks[0]; !c.CriticalSince.IsZero() || in.Health != registry.Warning {
				t.Errorf("check %+v health %q, want warning without critical_since", c, in.Health)
			}
		}},
		{name: "two ttl checks", mutate: func(in *registry.Instance) {
			in.Checks = []registry.Check{ttlCheck(time.Minute), ttlCheck(time.Minute)}
		}, want: []string{"checks[1].id", "checks[1].type"}},
		{name: "two ttl checks with distinct ids", mutate: func(in *registry.Instance) {
			a, b := ttlCheck(time.Minute), ttlCheck(time.Minute)
			a.ID, b.ID = "a", "b"
			in.Checks = []registry.Check{a, b}
		}, want: []string{"checks[1].type"}},

		// checks: active targets
		{name: "http target", mutate: func(in *registry.Instance) {
			in.Checks = []registry.Check{active(registry.CheckHTTP, "http://10.0.0.1:8080/health")}
		}},
		{name: "https target", mutate: func(in *registry.Instance) {
			in.Checks = []registry.Check{active(registry.CheckHTTP, "https://web.example.com/")}
		}},
		{name: "http target wrong scheme", mutate: func(in *registry.Instance) { in.Checks = []registry.Check{active(registry.CheckHTTP, "ftp://x/")} }, want: []string{"checks[0].target"}},
		{name: "http target no host", mutate: func(in *registry.Instance) {
			in.Checks = []registry.Check{active(registry.CheckHTTP, "http:///health")}
		}, want: []string{"checks[0].target"}},
		{name: "http target relative", mutate: func(in *registry.Instance) { in.Checks = []registry.Check{active(registry.CheckHTTP, "/health")} }, want: []string{"checks[0].target"}},
		{name: "http target empty", mutate: func(in *registry.Instance) { in.Checks = []registry.Check{active(registry.CheckHTTP, "")} }, want: []string{"checks[0].target"}},
		{name: "tcp target ipv4", mutate: func(in *registry.Instance) { in.Checks = []registry.Check{active(registry.CheckTCP, "10.0.0.1:5432")} }},
		{name: "tcp target ipv6", mutate: func(in *registry.Instance) {
			in.Checks = []registry.Check{active(registry.CheckTCP, "[2001:db8::1]:5432")}
		}},
		{name: "tcp target hostname", mutate: func(in *registry.Instance) {
			in.Checks = []registry.Check{active(registry.CheckTCP, "db.internal:5432")}
		}},
		{name: "tcp target no port", mutate: func(in *registry.Instance) { in.Checks = []registry.Check{active(registry.CheckTCP, "db.internal")} }, want: []string{"checks[0].target"}},
		{name: "tcp target port 0", mutate: func(in *registry.Instance) { in.Checks = []registry.Check{active(registry.CheckTCP, "db:0")} }, want: []string{"checks[0].target"}},
		{name: "tcp target port 65536", mutate: func(in *registry.Instance) { in.Checks = []registry.Check{active(registry.CheckTCP, "db:65536")} }, want: []string{"checks[0].target"}},
		{name: "tcp target named port", mutate: func(in *registry.Instance) { in.Checks = []registry.Check{active(registry.CheckTCP, "db:http")} }, want: []string{"checks[0].target"}},
		{name: "tcp target bad host", mutate: func(in *registry.Instance) { in.Checks = []registry.Check{active(registry.CheckTCP, "d_b:80")} }, want: []string{"checks[0].target"}},
		{name: "grpc target", mutate: func(in *registry.Instance) {
			in.Checks = []registry.Check{active(registry.CheckGRPC, "10.0.0.1:50051")}
		}},
		{name: "grpc target with service", mutate: func(in *registry.Instance) {
			in.Checks = []registry.Check{active(registry.CheckGRPC, "[::1]:50051/pkg.Health")}
		}},
		{name: "grpc target no port", mutate: func(in *registry.Instance) {
			in.Checks = []registry.Check{active(registry.CheckGRPC, "host/pkg.Health")}
		}, want: []string{"checks[0].target"}},
		{name: "check type unknown", mutate: func(in *registry.Instance) { in.Checks = []registry.Check{active("udp", "10.0.0.1:53")} }, want: []string{"checks[0].type"}},
		{name: "check type empty", mutate: func(in *registry.Instance) { in.Checks = []registry.Check{{}} }, want: []string{"checks[0].type"}},

		// checks: defaults and bounds of active checks
		{name: "active defaults filled", mutate: func(in *registry.Instance) {
			in.Checks = []registry.Check{active(registry.CheckTCP, "10.0.0.1:80"), active(registry.CheckHTTP, "http://10.0.0.1/")}
		}, check: func(t *testing.T, in *registry.Instance) {
			want := []registry.Check{
				{ID: "tcp-0", Type: registry.CheckTCP, Target: "10.0.0.1:80", Interval: dur(10 * time.Second), Timeout: dur(5 * time.Second),
					FailuresBeforeCritical: 3, SuccessesBeforePassing: 1, Status: registry.Critical},
				{ID: "http-1", Type: registry.CheckHTTP, Target: "http://10.0.0.1/", Interval: dur(10 * time.Second), Timeout: dur(5 * time.Second),
					FailuresBeforeCritical: 3, SuccessesBeforePassing: 1, Status: registry.Critical},
			}
			if !reflect.DeepEqual(in.Checks, want) {
				t.Errorf("checks\n got %+v\nwant %+v", in.Checks, want)
			}
			if in.Health != registry.Critical {
				t.Errorf("Health = %q, want critical until the first run", in.Health)
			}
		}},
		{name: "default timeout is at most the interval", mutate: func(in *registry.Instance) {
			c := active(registry.CheckTCP, "10.0.0.1:80")
			c.Interval = dur(time.Second)
			in.Checks = []registry.Check{c}
		}, check: func(t *testing.T, in *registry.Instance) {
			if got := in.Checks[0].Timeout.D(); got != time.Second {
				t.Errorf("Timeout = %v, want 1s", got)
			}
		}},
		{name: "interval 100ms", mutate: func(in *registry.Instance) {
			c := active(registry.CheckTCP, "10.0.0.1:80")
			c.Interval = dur(100 * time.Millisecond)
			in.Checks = []registry.Check{c}
		}},
		{name: "interval 99ms", mutate: func(in *registry.Instance) {
			c := active(registry.CheckTCP, "10.0.0.1:80")
			c.Interval = dur(99 * time.Millisecond)
			in.Checks = []registry.Check{c}
		}, want: []string{"checks[0].interval"}},
		{name: "interval over 24h", mutate: func(in *registry.Instance) {
			c := active(registry.CheckTCP, "10.0.0.1:80")
			c.Interval = dur(25 * time.Hour)
			in.Checks = []registry.Check{c}
		}, want: []string{"checks[0].interval"}},
		{name: "timeout above interval", mutate: func(in *registry.Instance) {
			c := active(registry.CheckTCP, "10.0.0.1:80")
			c.Interval, c.Timeout = dur(time.Second), dur(2*time.Second)
			in.Checks = []registry.Check{c}
		}, want: []string{"checks[0].timeout"}},
		{name: "timeout negative", mutate: func(in *registry.Instance) {
			c := active(registry.CheckTCP, "10.0.0.1:80")
			c.Timeout = dur(-time.Second)
			in.Checks = []registry.Check{c}
		}, want: []string{"checks[0].timeout"}},
		{name: "failures and successes out of range", mutate: func(in *registry.Instance) {
			c := active(registry.CheckTCP, "10.0.0.1:80")
			c.FailuresBeforeCritical, c.SuccessesBeforePassing = 101, -1
			in.Checks = []registry.Check{c}
		}, want: []string{"checks[0].failures_before_critical", "checks[0].successes_before_passing"}},
		{name: "active check with ttl", mutate: func(in *registry.Instance) {
			c := active(registry.CheckTCP, "10.0.0.1:80")
			c.TTL = dur(time.Minute)
			in.Checks = []registry.Check{c}
		}, want: []string{"checks[0].ttl"}},
		{name: "status given kept", mutate: func(in *registry.Instance) {
			c := active(registry.CheckTCP, "10.0.0.1:80")
			c.Status = registry.Warning
			in.Checks = []registry.Check{c}
		}, check: func(t *testing.T, in *registry.Instance) {
			if in.Health != registry.Warning {
				t.Errorf("Health = %q, want warning", in.Health)
			}
		}},
		{name: "status unknown", mutate: func(in *registry.Instance) {
			c := ttlCheck(time.Minute)
			c.Status = "sick"
			in.Checks = []registry.Check{c}
		}, want: []string{"checks[0].status"}},
		{name: "deregister_after bounds", mutate: func(in *registry.Instance) {
			a, b, c := ttlCheck(time.Minute), active(registry.CheckTCP, "10.0.0.1:80"), active(registry.CheckGRPC, "10.0.0.1:81")
			a.DeregisterAfter = dur(24 * time.Hour)
			b.DeregisterAfter = dur(-1)
			c.DeregisterAfter = dur(24*time.Hour + 1)
			in.Checks = []registry.Check{a, b, c}
		}, want: []string{"checks[1].deregister_after", "checks[2].deregister_after"}},
		{name: "check name and output", mutate: func(in *registry.Instance) {
			c := ttlCheck(time.Minute)
			c.Name, c.Output = strings.Repeat("n", 257), strings.Repeat("o", 4097)
			in.Checks = []registry.Check{c}
		}, want: []string{"checks[0].name", "checks[0].output"}},
		{name: "check id invalid", mutate: func(in *registry.Instance) {
			c := ttlCheck(time.Minute)
			c.ID = "a b"
			in.Checks = []registry.Check{c}
		}, want: []string{"checks[0].id"}},
		{name: "duplicate check ids", mutate: func(in *registry.Instance) {
			a, b, c := active(registry.CheckTCP, "10.0.0.1:80"), active(registry.CheckHTTP, "http://x/"), active(registry.CheckGRPC, "x:1")
			a.ID, b.ID, c.ID = "same", "other", "same"
			in.Checks = []registry.Check{a, b, c}
		}, want: []string{"checks[2].id"}},
		{name: "explicit id clashing with a default id", mutate: func(in *registry.Instance) {
			a, b := active(registry.CheckTCP, "10.0.0.1:80"), active(registry.CheckTCP, "10.0.0.1:81")
			a.ID = "tcp-1" // b defaults to tcp-1
			in.Checks = []registry.Check{a, b}
		}, want: []string{"checks[1].id"}},
		{name: "16 checks", mutate: func(in *registry.Instance) {
			for range 16 {
				in.Checks = append(in.Checks, active(registry.CheckTCP, "10.0.0.1:80"))
			}
		}},
		{name: "17 checks", mutate: func(in *registry.Instance) {
			for range 17 {
				in.Checks = append(in.Checks, active(registry.CheckTCP, "10.0.0.1:80"))
			}
		}, want: []string{"checks"}},
		{name: "16 checks and maintenance checks", mutate: func(in *registry.Instance) {
			for range 16 {
				in.Checks = append(in.Checks, active(registry.CheckTCP, "10.0.0.1:80"))
			}
			for i := range registry.MaxMaintenanceChecks {
				in.Checks = append(in.Checks, registry.Check{ID: "m" + strconv.Itoa(i), Type: registry.CheckMaintenance})
			}
		}},
		{name: "too many maintenance checks", mutate: func(in *registry.Instance) {
			for i := range registry.MaxMaintenanceChecks + 1 {
				in.Checks = append(in.Checks, registry.Check{ID: "m" + strconv.Itoa(i), Type: registry.CheckMaintenance})
			}
		}, want: []string{"checks"}},
		{name: "maintenance check starts critical", mutate: func(in *registry.Instance) {
			in.Checks = []registry.Check{{Type: registry.CheckMaintenance, Output: "upgrading"}}
		}, check: func(t *testing.T, in *registry.Instance) {
			c := in.Checks[0]
			if c.ID != "maintenance-0" || c.Status != registry.Critical || in.Health != registry.Critical || c.Interval != 0 || c.Timeout != 0 {
				t.Errorf("maintenance check %+v, health %s", c, in.Health)
			}
		}},
		{name: "maintenance check may be registered passing", mutate: func(in *registry.Instance) {
			in.Checks = []registry.Check{{ID: "m", Type: registry.CheckMaintenance, Status: registry.Passing}}
		}, check: func(t *testing.T, in *registry.Instance) {
			if in.Health != registry.Passing {
				t.Errorf("health %s", in.Health)
			}
		}},
		{name: "maintenance check runs nothing", mutate: func(in *registry.Instance) {
			in.Checks = []registry.Check{{Type: registry.CheckMaintenance, Target: "http://x/", Interval: dur(time.Second), Timeout: dur(time.Second),
				TTL: dur(time.Minute), FailuresBeforeCritical: 2, SuccessesBeforePassing: 2, DeregisterAfter: dur(time.Minute)}}
		}, want: []string{"checks[0].deregister_after", "checks[0].failures_before_critical", "checks[0].interval",
			"checks[0].successes_before_passing", "checks[0].target", "checks[0].timeout", "checks[0].ttl"}},

		// every offending field at once
		{name: "all offending fields listed", mutate: func(in *registry.Instance) {
			*in = registry.Instance{
				Service: "-bad-", ID: "bad id", Address: "", Port: 0, Weight: 101, Priority: -1,
				Zone: "a_b", Region: "c.d", Revision: "\x00", Repo: strings.Repeat("r", 300),
				Tags: []string{""}, Meta: map[string]string{"bad key": "v"},
				Checks: []registry.Check{ttlCheck(0), active(registry.CheckHTTP, "nope"), {Type: "x"}},
			}
		}, want: []string{
			"address", "checks[0].ttl", "checks[1].target", "checks[2].type", "id", "meta.bad key",
			"port", "priority", "region", "repo", "revision", "service", "tags[0]", "weight", "zone",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := validInstance()
			tc.mutate(in)
			err := registry.Normalize(in)
			got := fieldsOf(t, err)
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("Normalize fields = %q, want %q (err: %v)", got, tc.want, err)
			}
			if err == nil {
				// A normalised instance stays valid and unchanged.
				again := in.Clone()
				if err := registry.Normalize(again); err != nil {
					t.Fatalf("second Normalize: %v", err)
				}
				if !reflect.DeepEqual(again, in) {
					t.Errorf("Normalize is not idempotent:\n first %+v\nsecond %+v", in, again)
				}
			}
			if tc.check != nil {
				tc.check(t, in)
			}
		})
	}
}

// TestNormalizeRejectsDottedDecimalNonIP checks that a malformed IPv4
// address is not accepted as a host name.
//
// Regression (found as a bug in this session, since fixed in validate.go):
// ValidAddress falls back to ValidHostname for anything netip.ParseAddr
// rejects, and ValidHostname accepted all-numeric labels, so "10.0.0.256"
// or "1.2.3" — typos of IPv4 addresses — were registered as host names. RFC 1123 §2.1, which the doc
// comment of ValidHostname cites, says a valid host name never has the
// dotted-decimal form (its top-level label is alphabetic). Such an
// instance was then served to clients that would try to resolve it.
func TestNormalizeRejectsDottedDecimalNonIP(t *testing.T) {
	for _, addr := range []string{"10.0.0.256", "300.1.1.1", "1.2.3", "10.0.0.1.5"} {
		t.Run(addr, func(t *testing.T) {
			in := validInstance()
			in.Address = addr
			if got := fieldsOf(t, registry.Normalize(in)); !reflect.DeepEqual(got, []string{"address"}) {
				t.Errorf("Normalize(address %q) fields = %q, want [address]", addr, got)
			}
		})
	}
}

func TestValidationErrorErr(t *testing.T) {
	var nilErr *registry.ValidationError
	if nilErr.Err() != nil {
		t.Error("nil ValidationError.Err() != nil")
	}
	v := &registry.ValidationError{}
	if v.Err() != nil {
		t.Error("empty ValidationError.Err() != nil")
	}
	v.Add("zeta", "z")
	v.Add("alpha", "a")
	err := v.Err()
	if err == nil {
		t.Fatal("Err() = nil with two fields")
	}
	if got, want := err.Error(), "invalid request: alpha: a; zeta: z"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestQueryMatch(t *testing.T) {
	in := func(h registry.Health, zone string, tags []string, meta map[string]string) *registry.Instance {
		return &registry.Instance{Service: "web", ID: "a", Health: h, Zone: zone, Tags: tags, Meta: meta}
	}
	full := in(registry.Passing, "eu-1", []string{"v1", "primary"}, map[string]string{"env": "prod", "empty": ""})
	tests := []struct {
		name string
		q    registry.Query
		in   *registry.Instance
		want bool
	}{
		{"empty query matches all", registry.Query{}, in(registry.Critical, "", nil, nil), true},
		{"passing only: passing", registry.Query{Health: registry.PassingOnly}, in(registry.Passing, "", nil, nil), true},
		{"passing only: warning", registry.Query{Health: registry.PassingOnly}, in(registry.Warning, "", nil, nil), false},
		{"passing only: critical", registry.Query{Health: registry.PassingOnly}, in(registry.Critical, "", nil, nil), false},
		{"not critical: passing", registry.Query{Health: registry.NotCritical}, in(registry.Passing, "", nil, nil), true},
		{"not critical: warning", registry.Query{Health: registry.NotCritical}, in(registry.Warning, "", nil, nil), true},
		{"not critical: critical", registry.Query{Health: registry.NotCritical}, in(registry.Critical, "", nil, nil), false},
		{"any health: critical", registry.Query{Health: registry.AnyHealth}, in(registry.Critical, "", nil, nil), true},
		{"zone match", registry.Query{Zone: "eu-1"}, full, true},
		{"zone mismatch", registry.Query{Zone: "eu-2"}, full, false},
		{"zone required but instance has none", registry.Query{Zone: "eu-1"}, in(registry.Passing, "", nil, nil), false},
		{"one tag", registry.Query{Tags: []string{"primary"}}, full, true},
		{"all tags", registry.Query{Tags: []string{"primary", "v1"}}, full, true},
		{"one tag missing", registry.Query{Tags: []string{"primary", "v2"}}, full, false},
		{"tags are case sensitive", registry.Query{Tags: []string{"V1"}}, full, false},
		{"meta match", registry.Query{Meta: map[string]string{"env": "prod"}}, full, true},
		{"meta value mismatch", registry.Query{Meta: map[string]string{"env": "dev"}}, full, false},
		{"meta key missing", registry.Query{Meta: map[string]string{"team": ""}}, full, false},
		{"meta empty value present", registry.Query{Meta: map[string]string{"empty": ""}}, full, true},
		{"meta all keys", registry.Query{Meta: map[string]string{"env": "prod", "empty": ""}}, full, true},
		{"every filter", registry.Query{Health: registry.PassingOnly, Zone: "eu-1", Tags: []string{"v1"}, Meta: map[string]string{"env": "prod"}}, full, true},
		{"every filter but one", registry.Query{Health: registry.PassingOnly, Zone: "eu-1", Tags: []string{"v1"}, Meta: map[string]string{"env": "qa"}}, full, false},
		{"service is not a filter", registry.Query{Service: "other"}, full, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.q.Match(tc.in); got != tc.want {
				t.Errorf("Match = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestHealth(t *testing.T) {
	tests := []struct {
		h, o  registry.Health
		worse bool
	}{
		{registry.Critical, registry.Warning, true},
		{registry.Warning, registry.Passing, true},
		{registry.Passing, registry.Passing, false},
		{registry.Passing, registry.Critical, false},
		{"bogus", registry.Warning, true}, // unknown ranks as critical
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%s_vs_%s", tc.h, tc.o), func(t *testing.T) {
			if got := tc.h.Worse(tc.o); got != tc.worse {
				t.Errorf("%q.Worse(%q) = %v, want %v", tc.h, tc.o, got, tc.worse)
			}
		})
	}
	in := &registry.Instance{Checks: []registry.Check{{Status: registry.Passing}, {Status: registry.Warning}, {Status: registry.Passing}}}
	in.ComputeHealth()
	if in.Health != registry.Warning {
		t.Errorf("ComputeHealth = %q, want warning", in.Health)
	}
}

func TestDurationJSON(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    time.Duration
		wantErr bool
		// out is the marshalled form of the parsed value.
		out string
	}{
		{name: "seconds", in: `"10s"`, want: 10 * time.Second, out: `"10s"`},
		{name: "compound", in: `"1m30s"`, want: 90 * time.Second, out: `"1m30s"`},
		{name: "fraction", in: `"1.5s"`, want: 1500 * time.Millisecond, out: `"1.5s"`},
		{name: "ms", in: `"250ms"`, want: 250 * time.Millisecond, out: `"250ms"`},
		{name: "nanoseconds number", in: `1500000000`, want: 1500 * time.Millisecond, out: `"1.5s"`},
		{name: "zero number", in: `0`, want: 0, out: `"0s"`},
		{name: "empty string", in: `""`, want: 0, out: `"0s"`},
		{name: "null", in: `null`, want: 0, out: `"0s"`},
		{name: "negative", in: `"-2s"`, want: -2 * time.Second, out: `"-2s"`},
		{name: "no unit", in: `"10"`, wantErr: true},
		{name: "garbage", in: `"soon"`, wantErr: true},
		{name: "float number", in: `1.5`, wantErr: true},
		{name: "bool", in: `true`, wantErr: true},
		{name: "object", in: `{}`, wantErr: true},
		{name: "bad string escape", in: `"\x"`, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var d registry.Duration
			err := json.Unmarshal([]byte(tc.in), &d)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("Unmarshal(%s) = %v, want error", tc.in, d.D())
				}
				return
			}
			if err != nil {
				t.Fatalf("Unmarshal(%s): %v", tc.in, err)
			}
			if d.D() != tc.want {
				t.Errorf("Unmarshal(%s) = %v, want %v", tc.in, d.D(), tc.want)
			}
			out, err := json.Marshal(d)
			if err != nil {
				t.Fatal(err)
			}
			if string(out) != tc.out {
				t.Errorf("Marshal = %s, want %s", out, tc.out)
			}
			var back registry.Duration
			if err := json.Unmarshal(out, &back); err != nil || back != d {
				t.Errorf("round trip %s -> %v (%v), want %v", out, back.D(), err, d.D())
			}
		})
	}
}

func TestCheckJSONRoundTrip(t *testing.T) {
	c := registry.Check{ID: "http-0", Type: registry.CheckHTTP, Target: "http://x/", Interval: registry.Duration(10 * time.Second),
		Timeout: registry.Duration(time.Second), DeregisterAfter: registry.Duration(time.Hour), Status: registry.Critical,
		CriticalSince: time.Date(2024, 5, 6, 7, 8, 9, 10, time.UTC)}
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"interval":"10s"`, `"timeout":"1s"`, `"deregister_after":"1h0m0s"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("%s does not contain %s", b, want)
		}
	}
	if strings.Contains(string(b), `"ttl"`) {
		t.Errorf("%s: a zero ttl should be omitted", b)
	}
	var back registry.Check
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, c) {
		t.Errorf("round trip\n got %+v\nwant %+v", back, c)
	}
}

func FuzzDurationJSON(f *testing.F) {
	for _, s := range []string{`"10s"`, `"1m30s"`, `1500000000`, `""`, `"-1h"`, `null`, `"1.5µs"`, `"x"`, `9223372036854775807`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var d registry.Duration
		if err := d.UnmarshalJSON(b); err != nil {
			return
		}
		out, err := json.Marshal(d)
		if err != nil {
			t.Fatalf("Marshal(%v): %v", d.D(), err)
		}
		var back registry.Duration
		if err := json.Unmarshal(out, &back); err != nil || back != d {
			t.Fatalf("round trip of %v via %s = %v (%v)", d.D(), out, back.D(), err)
		}
	})
}

// FuzzNormalize feeds arbitrary JSON instances to Normalize: it must never
// panic, and an instance it accepts must survive the trip through JSON
// (as the log carries it) and a second Normalize unchanged.
func FuzzNormalize(f *testing.F) {
	seeds := []string{
		`{"service":"web","address":"10.0.0.1","port":80}`,
		`{"service":"Web","id":"a","address":"::1","port":1,"tags":["a"],"meta":{"k":"v"},"zone":"EU"}`,
		`{"service":"web","address":"h.example","port":80,"checks":[{"type":"ttl","ttl":"10s"}]}`,
		`{"service":"web","address":"h","port":80,"checks":[{"type":"http","target":"http://h/","interval":"1s"},{"type":"tcp","target":"h:1"},{"type":"grpc","target":"h:1/s","status":"warning"}]}`,
		`{"service":"web","address":"h","port":80,"checks":[{"type":"ttl","ttl":"1s","status":"critical","critical_since":"2024-01-01T00:00:00+02:00"}]}`,
		`{"service":"-","address":"","port":0}`,
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var in registry.Instance
		if json.Unmarshal(b, &in) != nil {
			return
		}
		if err := registry.Normalize(&in); err != nil {
			var v *registry.ValidationError
			if !errors.As(err, &v) || len(v.Fields) == 0 {
				t.Fatalf("Normalize error %v is not a non-empty ValidationError", err)
			}
			return
		}
		first, err := json.Marshal(&in)
		if err != nil {
			t.Fatalf("Marshal normalised instance: %v", err)
		}
		var back registry.Instance
		if err := json.Unmarshal(first, &back); err != nil {
			t.Fatalf("Unmarshal %s: %v", first, err)
		}
		if err := registry.Normalize(&back); err != nil {
			t.Fatalf("normalised instance %s fails a second Normalize: %v", first, err)
		}
		second, _ := json.Marshal(&back)
		if string(first) != string(second) {
			t.Fatalf("Normalize is not stable across JSON:\n first %s\nsecond %s", first, second)
		}
	})
}

// TestNormalizeRejectsInvalidUTF8: free-text fields are "printable
// characters"; bytes that are not UTF-8 are not characters.
//
// Regression test (fixed): validText (validate.go) ranges over the string's runes and only
// rejects control characters, so an invalid byte (decoded as U+FFFD)
// passes. JSON encoding then rewrites it to U+FFFD, so the instance that
// the accepting node applies from memory differs from the one every
// replica and every replay of the log decodes (see
// store.TestLogMatchesReplay). validText should also require
// utf8.ValidString.
func TestNormalizeRejectsInvalidUTF8(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(in *registry.Instance)
		want   []string
	}{
		{"tag", func(in *registry.Instance) { in.Tags = []string{"caf\xe9"} }, []string{"tags[0]"}},
		{"meta value", func(in *registry.Instance) { in.Meta = map[string]string{"k": "\xff"} }, []string{"meta.k"}},
		{"revision", func(in *registry.Instance) { in.Revision = "r\x80" }, []string{"revision"}},
		{"repo", func(in *registry.Instance) { in.Repo = "\xc3" }, []string{"repo"}},
		{"check output", func(in *registry.Instance) {
			in.Checks = []registry.Check{{Type: registry.CheckTTL, TTL: registry.Duration(time.Minute), Output: "ok\xe2\x82"}}
		}, []string{"checks[0].output"}},
		{"valid multibyte is fine", func(in *registry.Instance) { in.Tags = []string{"café ☃"} }, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := validInstance()
			tc.mutate(in)
			if got := fieldsOf(t, registry.Normalize(in)); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("fields %q, want %q", got, tc.want)
			}
		})
	}
}
