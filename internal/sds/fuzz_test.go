package sds

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"testing"

	"github.com/rosterhq/roster/internal/registry"
)

// formSeeds are registration bodies as clients send them.
var formSeeds = []string{
	"ip=10.10.10.10&port=1000&revision=abc&service_repo_name=bar&tags=%7B%22az%22%3A%22a%22%2C%22instance_id%22%3A%22i%22%2C%22region%22%3A%22r%22%7D",
	"auto_ip=True&port=80&revision=r&tags=%7B%22az%22%3A%22a%22%2C%22instance_id%22%3A1%2C%22region%22%3Anull%2C%22canary%22%3A%22yes%22%2C%22load_balancing_weight%22%3A%2210%22%7D",
	"ip=2001:db8::1&port=65535&revision=r&tags={\"az\":\"a\",\"instance_id\":\"i\",\"region\":\"r\",\"x.y\":{\"b\":[1,2.50]}}",
	"ip=0&port=0&revision=0&service_repo_name=0&tags=0",
	"ip=10.0.0.1&port=test&revision=r",
	"ip=10.0.0.1&port=1&revision=r&tags={\"az\":1}",
	"ip=::ffff:10.0.0.1&port=%2B5&revision=%00&tags={\"az\":\"\\u007f\",\"instance_id\":\"\",\"region\":\"\",\"\":\"\"}",
}

// FuzzCheckIn feeds registration forms through parsing and translation:
// nothing panics, and an accepted form becomes an instance the registry
// accepts (apart from revision and repo, passed through as sent) whose
// tags read back as accepted and whose answer passes Envoy's schema.
func FuzzCheckIn(f *testing.F) {
	for _, s := range formSeeds {
		f.Add(s, "192.168.1.1")
	}
	a := &API{cfg: DefaultConfig()}
	f.Fuzz(func(t *testing.T, body, xff string) {
		form, err := url.ParseQuery(body)
		if err != nil {
			return // the server answers 400 before parsing fields
		}
		r := &http.Request{RemoteAddr: "127.0.0.1:1", Header: http.Header{"X-Forwarded-For": {xff}}}
		client := func() (netip.Addr, bool) {
			addr, ok := clientAddr(r, a.cfg.TrustedProxies)
			return addr, ok && contains(a.cfg.AutoIPNets, addr)
		}
		ci, err := parseCheckIn(form, client)
		if err != nil {
			var rerr *requestError
			if !errors.As(err, &rerr) || rerr.status != http.StatusBadRequest {
				t.Fatalf("refusal %v is not a 400", err)
			}
			return
		}
		if ci.port < 1 || ci.port > 65535 || !ci.addr.IsValid() || ci.addr.Zone() != "" || ci.addr.Is4In6() || ci.revision == "" {
			t.Fatalf("accepted %+v", ci)
		}
		for _, k := range requiredTags {
			if _, ok := ci.tags[k]; !ok {
				t.Fatalf("accepted tags without %s: %v", k, ci.tags)
			}
		}
		in, err := a.desired(nil, registry.Key{Service: "web", ID: HostID(ci.addr)}, ci)
		if err != nil {
			return // a tag the metadata cannot hold: a 400
		}
		in.Meta[metaCheckIn] = "2024-01-01 00:00:00"
		if err := registry.Normalize(in); err != nil {
			var verr *registry.ValidationError
			if !errors.As(err, &verr) {
				t.Fatal(err)
			}
			for _, fe := range verr.Fields {
				if fe.Field != "revision" && fe.Field != "repo" {
					t.Fatalf("the registry refuses a translated check-in: %v\n%+v", err, in)
				}
			}
			return
		}
		got := fromMeta(in.Meta)
		for k, v := range ci.tags {
			if string(got[k]) != string(v) {
				t.Fatalf("tag %q reads back as %s, was %s", k, got[k], v)
			}
		}
		// The same form again changes nothing: a heartbeat, no log write.
		again, err := a.desired(in, in.Key(), ci)
		if err != nil {
			t.Fatalf("the same check-in again is refused: %v", err)
		}
		if !unchanged(in, again) {
			t.Fatalf("the same check-in again is not a heartbeat:\n%+v\n%+v", in, again)
		}
		in.Health = registry.Passing
		body2 := encodeAnswer(serviceAnswer{Service: "web", Hosts: hostsOf([]*registry.Instance{in})})
		if err := checkSDSSchema(body2); err != nil {
			t.Fatalf("%v: %s", err, body2)
		}
	})
}

// FuzzTags checks the tags parser: accepted tags are canonical (parsing
// their encoding gives them back), and the metadata scheme holds them
// exactly or refuses them with a 400.
func FuzzTags(f *testing.F) {
	for _, s := range []string{`{}`, `{"az":"a","n":1.50,"o":{"b":1,"a":[true,null]}}`, `{"a.b c":"x\n\u007f"}`,
		`[1]`, `{"az":`, `{"\u00e9":"\ud800"}`, `{"k":1e400}`, `{"":""}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		tags, err := parseTags(text)
		if err != nil {
			return
		}
		again, err := parseTags(string(encodeTags(tags)))
		if err != nil {
			t.Fatalf("encoded tags do not parse: %v: %s", err, encodeTags(tags))
		}
		for k, v := range tags {
			if !json.Valid(v) || string(again[k]) != string(v) {
				t.Fatalf("tag %q: %s then %s", k, v, again[k])
			}
		}
		meta := map[string]string{}
		if err := toMeta(meta, tags); err != nil {
			return
		}
		back := fromMeta(meta)
		if len(back) != len(tags) {
			t.Fatalf("fromMeta gave %d tags, want %d", len(back), len(tags))
		}
		for k, v := range tags {
			if string(back[k]) != string(v) {
				t.Fatalf("tag %q: stored %s, read %s", k, v, back[k])
			}
		}
		in := &registry.Instance{Service: "web", ID: "x", Address: "10.0.0.1", Port: 1, Meta: meta}
		if err := registry.Normalize(in); err != nil {
			t.Fatalf("the registry refuses the scheme's metadata: %v", err)
		}
	})
}

// FuzzTagName checks that every name encodes to a valid meta key suffix
// and decodes back.
func FuzzTagName(f *testing.F) {
	for _, s := range []string{"az", "a.b", "a b", "", "é", ".2e", "load_balancing_weight"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		enc := encodeTagName(name)
		if strings.Trim(enc, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.") != "" {
			t.Fatalf("encodeTagName(%q) = %q", name, enc)
		}
		if got, ok := decodeTagName(enc); !ok || got != name {
			t.Fatalf("decodeTagName(%q) = %q, %v, want %q", enc, got, ok, name)
		}
		if got, ok := decodeTagName(name); ok && encodeTagName(got) != name {
			t.Fatalf("decodeTagName(%q) = %q does not encode back", name, got)
		}
	})
}

// FuzzClientAddr: any header gives an address or a refusal, never a
// zoned or IPv4-mapped address.
func FuzzClientAddr(f *testing.F) {
	f.Add("127.0.0.1:1", "192.168.0.0,192.168.216.186")
	f.Add("[::1]:1", "::ffff:1.2.3.4, fe80::1%eth0")
	f.Add("10.0.0.1:1", "")
	trusted := DefaultConfig().TrustedProxies
	f.Fuzz(func(t *testing.T, peer, xff string) {
		r := &http.Request{RemoteAddr: peer, Header: http.Header{"X-Forwarded-For": {xff}}}
		a, ok := clientAddr(r, trusted)
		if ok && (!a.IsValid() || a.Zone() != "" || a.Is4In6()) {
			t.Fatalf("clientAddr = %v", a)
		}
	})
}
