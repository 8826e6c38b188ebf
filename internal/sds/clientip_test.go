package sds

import (
	"net/http"
	"net/netip"
	"testing"
)

func TestClientAddr(t *testing.T) {
	loopback := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	twoProxies := append([]netip.Prefix{netip.MustParsePrefix("10.9.0.0/16")}, loopback...)
	tests := []struct {
		name    string
		peer    string
		xff     []string
		trusted []netip.Prefix
		want    string // "" for refused
	}{
		{"no header: the peer", "192.168.1.5:4000", nil, loopback, "192.168.1.5"},
		{"trusted proxy, one hop", "127.0.0.1:4000", []string{"192.168.216.186"}, loopback, "192.168.216.186"},
		{"the last hop is the client", "127.0.0.1:4000", []string{"192.168.0.0,192.168.216.186"}, loopback, "192.168.216.186"},
		{"a client-written first hop is not used", "127.0.0.1:4000", []string{"192.168.1.5, 10.1.1.1"}, loopback, "10.1.1.1"},
		{"headers joined in order", "127.0.0.1:4000", []string{"192.168.1.5", "10.1.1.1"}, loopback, "10.1.1.1"},
		{"untrusted peer: header ignored", "10.1.1.1:4000", []string{"192.168.1.5"}, loopback, "10.1.1.1"},
		{"no trusted proxies: header ignored", "127.0.0.1:4000", []string{"192.168.1.5"}, nil, "127.0.0.1"},
		{"trusted hops skipped", "127.0.0.1:4000", []string{"192.168.1.5, 10.9.0.1"}, twoProxies, "192.168.1.5"},
		{"all hops trusted: the first", "127.0.0.1:4000", []string{"10.9.0.2, 10.9.0.1"}, twoProxies, "10.9.0.2"},
		{"bad last hop refuses", "127.0.0.1:4000", []string{"192.168.1.5, 192.168.256.186"}, loopback, ""},
		{"empty hop refuses", "127.0.0.1:4000", []string{"192.168.1.5,"}, loopback, ""},
		{"ipv6 peer", "[::1]:4000", []string{"2001:db8::1"}, loopback, "2001:db8::1"},
		{"mapped peer", "[::ffff:127.0.0.1]:4000", []string{"192.168.3.4"}, loopback, "192.168.3.4"},
		{"mapped hop", "127.0.0.1:4000", []string{"::ffff:192.168.3.4"}, loopback, "192.168.3.4"},
		{"no peer", "", []string{"192.168.3.4"}, loopback, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := &http.Request{RemoteAddr: tc.peer, Header: http.Header{}}
			for _, v := range tc.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			got, ok := clientAddr(r, tc.trusted)
			if tc.want == "" {
				if ok {
					t.Fatalf("clientAddr = %v, want refusal", got)
				}
				return
			}
			if !ok || got.String() != tc.want {
				t.Fatalf("clientAddr = %v, %v, want %s", got, ok, tc.want)
			}
		})
	}
}
