package consulapi

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rosterhq/roster/internal/registry"
)

func TestDecodeLenient(t *testing.T) {
	tests := []struct {
		name string
		body string
		want serviceDefinition
	}{
		{"CamelCase", `{"Name":"web","ID":"w1","Port":80,"Tags":["a"],"Meta":{"Version":"v1"},"EnableTagOverride":true}`,
			serviceDefinition{Name: "web", ID: "w1", Port: 80, Tags: []string{"a"}, Meta: map[string]string{"Version": "v1"}, EnableTagOverride: true}},
		{"lower case (python-consul 0.7)", `{"name":"web","id":"w1","port":80,"enabletagoverride":true,"check":{"ttl":"10s","http":""}}`,
			serviceDefinition{Name: "web", ID: "w1", Port: 80, EnableTagOverride: true, Check: &checkDefinition{TTL: duration(10 * time.Second)}}},
		{"snake_case", `{"name":"web","enable_tag_override":true,"tagged_addresses":{"lan":{"address":"10.0.0.1","port":80}},
			"check":{"deregister_critical_service_after":"1m","script_args":["x"],"check_id":"c"}}`,
			serviceDefinition{Name: "web", EnableTagOverride: true, TaggedAddresses: map[string]serviceAddress{"lan": {Address: "10.0.0.1", Port: 80}},
				Check: &checkDefinition{CheckID: "c", DeregisterCriticalServiceAfter: duration(time.Minute), ScriptArgs: []string{"x"}}}},
		{"aliases", `{"Service":"web","ServiceID":"w1","Checks":[{"Args":["a"],"ID":"c1"}]}`,
			serviceDefinition{Name: "web", ID: "w1", Checks: []*checkDefinition{{CheckID: "c1", ScriptArgs: []string{"a"}}}}},
		{"map keys are kept verbatim", `{"Meta":{"deploy_Id":"x"},"Check":{"Header":{"X-Trace_ID":["1"],"Accept":"text/plain"}}}`,
			serviceDefinition{Meta: map[string]string{"deploy_Id": "x"}, Check: &checkDefinition{Header: map[string][]string{"X-Trace_ID": {"1"}, "Accept": {"text/plain"}}}}},
		{"nanosecond durations and nulls", `{"Name":"web","Tags":null,"Check":{"Interval":1000000000,"Timeout":null}}`,
			serviceDefinition{Name: "web", Check: &checkDefinition{Interval: duration(time.Second)}}},
		{"unknown keys are ignored", `{"Name":"web","Frobnicate":{"x":1}}`, serviceDefinition{Name: "web"}},
		{"empty body", ``, serviceDefinition{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got serviceDefinition
			if err := decodeBody(strings.NewReader(tc.body), &got); err != nil {
				t.Fatalf("decode: %v", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct{ body, want string }{
		{`{"Name":1}`, "Name: must be a string, not a number"},
		{`{"Port":8.5}`, "Port: must be an integer, not a number"},
		{`{"Port":99999999999999999999}`, "Port: must be an integer, not a number"},
		{`{"Tags":{"a":1}}`, "Tags: must be an array, not a object"},
		{`{"Meta":{"k":1}}`, "Meta.k: must be a string, not a number"},
		{`{"Checks":[{"TTL":"10s"},{"Interval":"ten"}]}`, `Checks[1].Interval: must be a duration such as "10s", not "ten"`},
		{`{"Check":{"TTL":true}}`, `Check.TTL: must be a duration such as "10s", not a boolean`},
		{`{"Weights":[1]}`, "Weights: must be an object, not a array"},
		{`[]`, "must be an object, not a array"},
		{`{"Name":"a"} {}`, "invalid JSON: data after the value"},
		{`{"Name":"a"`, "invalid JSON"},
		{`{"Name":"` + strings.Repeat("x", MaxBodyBytes) + `"}`, "body larger than"},
	}
	for _, tc := range tests {
		var d serviceDefinition
		err := decodeBody(strings.NewReader(tc.body), &d)
		var derr *decodeError
		if !errors.As(err, &derr) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("decode %.60s = %v, want a decodeError containing %q", tc.body, err, tc.want)
		}
	}
}

func TestCheckIDMapping(t *testing.T) {
	in := &registry.Instance{Service: "web", ID: "w:1", Checks: []registry.Check{
		{ID: "service:w:1"}, {ID: "service:w:1:2"}, {ID: "ttl"}, {ID: "http-0"}, {ID: "mine:x"},
	}}
	want := []string{"service:w:1", "service:w:1:2", "service:w:1:ttl", "service:w:1:http-0", "mine:x"}
	for i := range in.Checks {
		id := consulCheckID(in, &in.Checks[i])
		if id != want[i] {
			t.Errorf("check %q shows as %q, want %q", in.Checks[i].ID, id, want[i])
		}
		if c := checkOf(in, id); c != &in.Checks[i] {
			t.Errorf("%q does not map back to check %q", id, in.Checks[i].ID)
		}
	}
}

// seedCorpus adds every file of testdata/dir as a seed.
func seedCorpus(f *testing.F, dir string) {
	f.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", dir, "*"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no seeds in testdata/%s: %v", dir, err)
	}
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

// FuzzRegistrationBody decodes arbitrary registration bodies: the decoder
// and the translation never panic, and a translated instance is either
// accepted by the registry's rules or rejected with named fields that map
// to registration fields.
func FuzzRegistrationBody(f *testing.F) {
	seedCorpus(f, "register")
	f.Fuzz(func(t *testing.T, body []byte) {
		var d serviceDefinition
		if err := decodeBytes(body, &d); err != nil {
			var derr *decodeError
			if !errors.As(err, &derr) {
				t.Fatalf("decode error %T %v is not a decodeError", err, err)
			}
			return
		}
		in, paths, err := toInstance(&d, "10.0.0.1")
		if err != nil {
			var herr *httpError
			if !errors.As(err, &herr) || herr.code != 400 {
				t.Fatalf("translation error %v is not a 400", err)
			}
			return
		}
		if len(paths) != len(in.Checks) {
			t.Fatalf("%d check paths for %d checks", len(paths), len(in.Checks))
		}
		if err := registry.Normalize(in); err != nil {
			var verr *registry.ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("Normalize: %v", err)
			}
			if herr := registryFieldError(verr, paths); herr == nil {
				t.Fatal("a rejected instance translated to no error")
			}
		}
	})
}

// FuzzFilter parses arbitrary ?filter expressions and evaluates those that
// parse against every shape a filter applies to: never a panic, and an
// error is the client's (400).
func FuzzFilter(f *testing.F) {
	seedCorpus(f, "filter")
	a := New(Config{NodeName: "n1", NodeID: "x", HTTPAddr: "127.0.0.1:8500"})
	in := &registry.Instance{Service: "web", ID: "w1", Address: "10.0.0.1", Port: 80, Tags: []string{"a", "b"},
		Meta: map[string]string{"version": "v2"}, Weight: 1, Health: registry.Passing,
		Checks: []registry.Check{{ID: "ttl", Type: registry.CheckTTL, TTL: registry.Duration(time.Second), Status: registry.Passing}}}
	shapes := []any{a.toServiceEntry(in), a.toCatalogService(in), a.toAgentService(in), a.toHealthChecks(in, nil)[0], &a.node}
	f.Fuzz(func(t *testing.T, expr []byte) {
		ev, err := newFilter(string(expr))
		if err != nil {
			var herr *httpError
			if !errors.As(err, &herr) || herr.code != 400 {
				t.Fatalf("filter error %v is not a 400", err)
			}
			return
		}
		o := queryOptions{filter: ev}
		for _, v := range shapes {
			if _, err := o.keep(v); err != nil {
				var herr *httpError
				if !errors.As(err, &herr) || herr.code != 400 {
					t.Fatalf("evaluation error %v is not a 400", err)
				}
			}
		}
	})
}
