package sds

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/rosterhq/roster/internal/registry"
)

// host is one host of an answer, in the original's fields and order.
type host struct {
	Service         string          `json:"service"`
	IPAddress       string          `json:"ip_address"`
	ServiceRepoName string          `json:"service_repo_name"`
	Port            int             `json:"port"`
	Revision        string          `json:"revision"`
	LastCheckIn     string          `json:"last_check_in"`
	Tags            json.RawMessage `json:"tags"`
}

// serviceAnswer is GET /v1/registration/{service}.
type serviceAnswer struct {
	Service string `json:"service"`
	Env     string `json:"env"`
	Hosts   []host `json:"hosts"`
}

// repoAnswer is GET /v1/registration/repo/{service_repo_name}.
type repoAnswer struct {
	ServiceRepoName string `json:"service_repo_name"`
	Env             string `json:"env"`
	Hosts           []host `json:"hosts"`
}

// FormatCheckIn writes a time as the original wrote last_check_in:
// "2006-01-02 15:04:05.000000" in UTC, without the fraction when its
// microseconds are zero.
func FormatCheckIn(t time.Time) string {
	t = t.UTC().Truncate(time.Microsecond)
	if t.Nanosecond() == 0 {
		return t.Format(time.DateTime)
	}
	return t.Format("2006-01-02 15:04:05.000000")
}

// ParseCheckIn reads FormatCheckIn's text (and the original's variant
// with a "+00:00" suffix).
func ParseCheckIn(s string) (time.Time, error) {
	s = strings.TrimSuffix(s, "+00:00")
	return time.ParseInLocation("2006-01-02 15:04:05.999999", s, time.UTC)
}

// hostOf turns an instance into a host of an answer. Instances registered
// through this API carry their tags in metadata (see toMeta); the tags of
// other instances are made from the model: az, region, instance_id,
// canary, load_balancing_weight, and their metadata as string tags. In
// every case canary and load_balancing_weight come from the instance's
// Canary and Weight, so a change made through another API shows, and
// every answer passes Envoy's schema.
func hostOf(in *registry.Instance) host {
	return host{
		Service:         in.Service,
		IPAddress:       in.Address,
		ServiceRepoName: in.Repo,
		Port:            in.Port,
		Revision:        in.Revision,
		LastCheckIn:     in.Meta[metaCheckIn],
		Tags:            encodeTags(tagsOf(in)),
	}
}

// registeredHere reports whether the instance was registered through this
// API (it then carries its check-in time).
func registeredHere(in *registry.Instance) bool {
	_, ok := in.Meta[metaCheckIn]
	return ok
}

// tagsOf returns an instance's tags as answers show them.
func tagsOf(in *registry.Instance) Tags {
	t := Tags{}
	for k, v := range in.Meta {
		if !strings.HasPrefix(k, metaPrefix) {
			t[k], _ = canonicalJSON(v)
		}
	}
	for k, v := range fromMeta(in.Meta) {
		t[k] = v
	}
	here := registeredHere(in)
	if !here {
		setString := func(k, v string) {
			if _, ok := t[k]; !ok && v != "" {
				t[k], _ = canonicalJSON(v)
			}
		}
		setString(TagAZ, in.Zone)
		setString(TagRegion, in.Region)
		setString(TagInstanceID, in.ID)
	}
	if _, ok := t[TagCanary]; ok || in.Canary || !here {
		t[TagCanary] = json.RawMessage(strconv.FormatBool(in.Canary))
	}
	if _, ok := t[TagWeight]; ok || in.Weight != registry.DefaultWeight || !here {
		t[TagWeight] = json.RawMessage(strconv.Itoa(max(in.Weight, 1)))
	}
	if v, ok := t[TagAZ]; ok && (len(v) == 0 || v[0] != '"') {
		// Only an instance changed through another API can get here;
		// Envoy refuses an answer with a non-string az.
		delete(t, TagAZ)
	}
	return t
}

// encodeTags writes tags as a JSON object with sorted keys.
func encodeTags(t Tags) json.RawMessage {
	keys := make([]string, 0, len(t))
	for k := range t {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b bytes.Buffer
	b.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		kb, _ := canonicalJSON(k)
		b.Write(kb)
		b.WriteByte(':')
		b.Write(t[k])
	}
	b.WriteByte('}')
	return b.Bytes()
}

// hostsOf returns the passing instances with an IP address as hosts, ordered by address,
// port, service and ID: the order does not depend on how instances were
// registered, and an unchanged set gives the same bytes.
func hostsOf(ins []*registry.Instance) []host {
	live := make([]*registry.Instance, 0, len(ins))
	for _, in := range ins {
		// Envoy reads ip_address as an IP; an instance registered by
		// host name through another API would spoil the whole answer.
		if _, err := netip.ParseAddr(in.Address); err == nil && in.Health == registry.Passing {
			live = append(live, in)
		}
	}
	sort.Slice(live, func(i, j int) bool {
		a, b := live[i], live[j]
		if c := compareAddr(a.Address, b.Address); c != 0 {
			return c < 0
		}
		if a.Port != b.Port {
			return a.Port < b.Port
		}
		if a.Service != b.Service {
			return a.Service < b.Service
		}
		return a.ID < b.ID
	})
	out := make([]host, len(live))
	for i, in := range live {
		out[i] = hostOf(in)
	}
	return out
}

// compareAddr orders IP addresses numerically (IPv4 first) and anything
// else (host names, from other APIs) after them, by text.
func compareAddr(a, b string) int {
	x, errx := netip.ParseAddr(a)
	y, erry := netip.ParseAddr(b)
	switch {
	case errx == nil && erry == nil:
		return x.Unmap().Compare(y.Unmap())
	case errx == nil:
		return -1
	case erry == nil:
		return 1
	}
	return strings.Compare(a, b)
}

// encodeAnswer writes an answer: compact JSON and a newline, HTML
// characters as they are.
func encodeAnswer(v any) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v) // only strings, ints and valid raw JSON
	return b.Bytes()
}
