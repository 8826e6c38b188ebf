package sds

import (
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/rosterhq/roster/internal/registry"
)

func TestFormatCheckIn(t *testing.T) {
	chicago, err := time.LoadLocation("America/Chicago")
	if err != nil {
		chicago = time.FixedZone("CST", -6*3600)
	}
	tests := []struct {
		t    time.Time
		want string
	}{
		{time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC), "2024-05-06 07:08:09.123456"},
		{time.Date(2024, 5, 6, 7, 8, 9, 1000, time.UTC), "2024-05-06 07:08:09.000001"},
		{time.Date(2024, 5, 6, 7, 8, 9, 999, time.UTC), "2024-05-06 07:08:09"}, // below a microsecond
		{time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC), "2024-05-06 07:08:09"},
		{time.Date(2024, 5, 6, 1, 8, 9, 500000000, chicago), "2024-05-06 06:08:09.500000"}, // always UTC
	}
	for _, tc := range tests {
		got := FormatCheckIn(tc.t)
		if got != tc.want {
			t.Errorf("FormatCheckIn(%v) = %q, want %q", tc.t, got, tc.want)
		}
		back, err := ParseCheckIn(got)
		if err != nil || !back.Equal(tc.t.Truncate(time.Microsecond)) {
			t.Errorf("ParseCheckIn(%q) = %v, %v, want %v", got, back, err, tc.t.Truncate(time.Microsecond))
		}
	}
	if got, err := ParseCheckIn("2024-05-06 07:08:09.5+00:00"); err != nil || got.Nanosecond() != 5e8 {
		t.Errorf("ParseCheckIn with +00:00 = %v, %v", got, err)
	}
}

func TestTagsOfOtherInstances(t *testing.T) {
	in := &registry.Instance{Service: "web", ID: "web-1", Address: "10.0.0.1", Port: 80, Zone: "eu-1a",
		Weight: 5, Canary: true, Meta: map[string]string{"version": "v2", "canary": "yes", "sds.other": "x"}}
	got := string(encodeTags(tagsOf(in)))
	want := `{"az":"eu-1a","canary":true,"instance_id":"web-1","load_balancing_weight":5,"version":"v2"}`
	if got != want {
		t.Errorf("tags = %s\nwant   %s", got, want)
	}
	// Registered here: the stored tags, canary and weight only when set
	// or not the default.
	here := &registry.Instance{Service: "web", ID: "10.0.0.1", Address: "10.0.0.1", Port: 80, Weight: 1,
		Meta: map[string]string{metaCheckIn: "x", "sds.tag.az": "A", "sds.tagj.instance_id": "7"}}
	if got, want := string(encodeTags(tagsOf(here))), `{"az":"A","instance_id":7}`; got != want {
		t.Errorf("tags = %s, want %s", got, want)
	}
	here.Weight, here.Canary = 3, true // changed through another API
	if got, want := string(encodeTags(tagsOf(here))), `{"az":"A","canary":true,"instance_id":7,"load_balancing_weight":3}`; got != want {
		t.Errorf("tags = %s, want %s", got, want)
	}
}

func TestHostsOf(t *testing.T) {
	mk := func(svc, id, addr string, port int, h registry.Health) *registry.Instance {
		return &registry.Instance{Service: svc, ID: id, Address: addr, Port: port, Health: h, Weight: 1}
	}
	ins := []*registry.Instance{
		mk("web", "a", "10.0.0.10", 80, registry.Passing),
		mk("web", "b", "10.0.0.9", 80, registry.Passing),
		mk("web", "c", "2001:db8::1", 80, registry.Passing),
		mk("web", "d", "db.internal", 80, registry.Passing), // not an IP: left out
		mk("web", "e", "10.0.0.9", 70, registry.Passing),
		mk("web", "f", "10.0.0.1", 80, registry.Critical), // expired: left out
		mk("web", "g", "10.0.0.2", 80, registry.Warning),  // not passing: left out
	}
	var got []string
	for _, h := range hostsOf(ins) {
		got = append(got, net.JoinHostPort(h.IPAddress, strconv.Itoa(h.Port)))
	}
	want := []string{"10.0.0.9:70", "10.0.0.9:80", "10.0.0.10:80", "[2001:db8::1]:80"}
	if len(got) != len(want) {
		t.Fatalf("hosts = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("hosts = %v, want %v", got, want)
		}
	}
	if b := encodeAnswer(serviceAnswer{Service: "web", Env: "e", Hosts: hostsOf(nil)}); string(b) != `{"service":"web","env":"e","hosts":[]}`+"\n" {
		t.Errorf("empty answer = %s", b)
	}
}
