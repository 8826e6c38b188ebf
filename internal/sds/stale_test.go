package sds

import (
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestMaxStale: with MaxStale, reads of hosts answer 503 (the not-leader
// body, Retry-After: 1) while this agent has not heard from a leader for
// longer, even with an answer in the CACHE_TTL cache; check-ins and
// /healthcheck are unaffected, and reads resume once contact returns.
func TestMaxStale(t *testing.T) {
	const maxStale = 5 * time.Second
	var contact atomic.Int64 // time.Duration
	s := newStack(t, func(c *Config) {
		c.CacheType = CacheSimple
		c.MaxStale = maxStale
		c.LastContact = func() time.Duration { return time.Duration(contact.Load()) }
	})
	s.mustDo(t, http.StatusOK, "POST", "/v1/registration/foo", hostForm("10.0.0.1"))
	s.get(t, "/v1/registration/foo") // now in the cache
	tests := []struct {
		name    string
		contact time.Duration
		// wantErr is the start of the 503's error; "" means answered.
		wantErr string
	}{
		{"leader", 0, ""},
		{"recent contact", time.Second, ""},
		{"at the limit", maxStale, ""},
		{"past the limit", 7 * time.Second, "stale: no contact with the leader for 7s (max-stale 5s): not the leader"},
		{"never in contact", -1, "stale: no contact with a leader since this agent started (max-stale 5s): not the leader"},
		{"contact again", 10 * time.Millisecond, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			contact.Store(int64(tc.contact))
			for _, path := range []string{"/v1/registration/foo", "/v1/registration/repo/bar"} {
				r := s.do(t, "GET", path, nil)
				if tc.wantErr == "" {
					if r.code != http.StatusOK {
						t.Errorf("GET %s = %s, want 200", path, r)
					}
					continue
				}
				want := `{"error":"` + tc.wantErr + `"}`
				if r.code != http.StatusServiceUnavailable || strings.TrimSpace(string(r.body)) != want ||
					r.header.Get("Retry-After") != "1" || r.header.Get(ErrorHeader) != tc.wantErr {
					t.Errorf("GET %s = %s %v, want 503 %s with Retry-After and %s", path, r, r.header, want, ErrorHeader)
				}
			}
			s.mustDo(t, http.StatusOK, "POST", "/v1/registration/foo", hostForm("10.0.0.1"))
			s.mustDo(t, http.StatusOK, "GET", "/healthcheck", nil)
		})
	}
	if n := counterValue(t, s.api.metrics.staleRefused); n != 4 {
		t.Errorf("stale_refused_total = %v, want 4", n)
	}
}

// TestMaxStaleOff: without a limit, or on a single agent, a long silence
// changes nothing.
func TestMaxStaleOff(t *testing.T) {
	for _, mod := range []func(*Config){
		func(c *Config) { c.LastContact = func() time.Duration { return -1 } },
		func(c *Config) { c.MaxStale = time.Second },
	} {
		s := newStack(t, mod)
		s.mustDo(t, http.StatusOK, "POST", "/v1/registration/foo", hostForm("10.0.0.1"))
		s.get(t, "/v1/registration/foo")
		s.get(t, "/v1/registration/repo/bar")
	}
}
