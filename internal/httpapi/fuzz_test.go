package httpapi_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rosterhq/roster/internal/registry"
)

// seeds adds every file under testdata/dir to the corpus.
func seeds(f *testing.F, dir string, trim bool) {
	f.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", dir, "*"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no seeds in testdata/%s: %v", dir, err)
	}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		if trim {
			b = bytes.TrimSpace(b)
		}
		f.Add(string(b))
	}
}

// serve runs one request through the API without a network.
func serve(s *stack, req *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	s.api.Handler().ServeHTTP(rec, req)
	return rec
}

// FuzzRegisterBody posts arbitrary bodies as registrations: the API never
// fails with a 5xx or panics, and whatever it accepts is an instance that
// passes the registry's validation again and reads back the same.
func FuzzRegisterBody(f *testing.F) {
	seeds(f, "register", false)
	for _, s := range []string{"", "null", "{}", "[]", `{"port":1e2}`, `{"address":"h","port":1,"checks":[{"type":"ttl","ttl":"1s"},{"type":"ttl","ttl":"2s"}]}`,
		`{"address":"h","port":1,"tags":["\u0000"]}`, `{"address":"h","port":1,"meta":{"":""}}`, "{\"address\":\"h\xff\",\"port\":1}"} {
		f.Add(s)
	}
	s := newStack(f)
	f.Fuzz(func(t *testing.T, body string) {
		for _, target := range []string{"POST /v1/services/fuzz/instances", "PUT /v1/services/fuzz/instances/fixed-id"} {
			method, path, _ := strings.Cut(target, " ")
			req := httptest.NewRequestWithContext(t.Context(), method, path, strings.NewReader(body))
			rec := serve(s, req)
			if rec.Code >= 500 {
				t.Fatalf("%s = %d %s", target, rec.Code, rec.Body)
			}
			if rec.Code >= 300 {
				var e errorBody
				if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error == "" {
					t.Fatalf("%s = %d with a body that is not an error: %s", target, rec.Code, rec.Body)
				}
				continue
			}
			var in registry.Instance
			if err := json.Unmarshal(rec.Body.Bytes(), &in); err != nil {
				t.Fatalf("%s = %d with a body that is not an instance: %v\n%s", target, rec.Code, err, rec.Body)
			}
			if in.Service != "fuzz" {
				t.Fatalf("registered under service %q", in.Service)
			}
			stored := in
			if err := registry.Normalize(&in); err != nil {
				t.Fatalf("accepted instance fails Normalize again: %v\nbody %q\ninstance %s", err, body, rec.Body)
			}
			get := serve(s, httptest.NewRequestWithContext(t.Context(), "GET", "/v1/services/fuzz/instances/"+stored.ID, nil))
			if get.Code != http.StatusOK {
				t.Fatalf("GET of the accepted instance = %d %s", get.Code, get.Body)
			}
			if !bytes.Equal(get.Body.Bytes(), rec.Body.Bytes()) {
				t.Fatalf("GET differs from the registration's answer:\n%s\n%s", get.Body, rec.Body)
			}
		}
	})
}

// FuzzQueryParams sends arbitrary query strings to the read endpoints:
// never a 5xx, never a panic. The registry is drained, so that a blocking
// query answers at once.
func FuzzQueryParams(f *testing.F) {
	seeds(f, "query", true)
	for _, q := range []string{"", "status=", "tag=&tag=", "meta==", "meta=a=b=c", "zone=%00", "index=0", "index=1&wait=0",
		"wait=99999999999", "wait=1h", "wait=-1", "index=99999999999999999999", "%zz", "a=%", ";;;", "status=passing&status=any"} {
		f.Add(q)
	}
	s := newStack(f)
	ttl := []registry.Check{{Type: registry.CheckTTL, TTL: registry.Duration(time.Minute)}}
	s.register(f, &registry.Instance{Service: "web", ID: "a", Address: "10.0.0.1", Port: 80, Zone: "eu-1",
		Tags: []string{"v1"}, Meta: map[string]string{"env": "prod"}, Checks: ttl})
	s.register(f, &registry.Instance{Service: "web", ID: "b", Address: "10.0.0.2", Port: 80})
	s.reg.Drain()
	f.Fuzz(func(t *testing.T, query string) {
		for _, path := range []string{"/v1/services/web/instances", "/v1/services/web/instances/a", "/v1/services", "/v1/services/web/watch"} {
			req := httptest.NewRequestWithContext(t.Context(), "GET", path, nil)
			req.URL.RawQuery = query
			rec := serve(s, req)
			if rec.Code >= 500 {
				t.Fatalf("GET %s?%s = %d %s", path, query, rec.Code, rec.Body)
			}
			if rec.Code == http.StatusOK && path != "/v1/services/web/watch" && !json.Valid(rec.Body.Bytes()) {
				t.Fatalf("GET %s?%s = 200 with invalid JSON %q", path, query, rec.Body)
			}
		}
	})
}
