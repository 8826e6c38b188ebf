package proxy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/rosterhq/roster/client"
	"github.com/rosterhq/roster/client/balance"
	"github.com/rosterhq/roster/internal/registry"
)

// Route sends the requests that match its Host and PathPrefix to the
// healthy instances of Service selected by its filter. It is also the
// JSON form of one entry of a routes file.
type Route struct {
	// Host matches the request's host (port, case and a trailing dot
	// ignored): a name ("shop.example.com") or a suffix pattern
	// ("*.example.com", one or more labels before the suffix). Empty
	// matches every host.
	Host string `json:"host,omitempty"`
	// PathPrefix matches the request path at a segment boundary: "/api"
	// matches "/api", "/api/" and "/api/x", not "/apix". A prefix ending
	// in "/" matches any path that starts with it. Empty matches every
	// path. At least one of Host and PathPrefix is required.
	PathPrefix string `json:"path_prefix,omitempty"`
	// StripPrefix removes PathPrefix from the path sent upstream.
	StripPrefix bool `json:"strip_prefix,omitempty"`
	// Service names the roster service. Required.
	Service string `json:"service"`
	// Tags and Meta select instances: each must carry every tag and hold
	// every key with that value.
	Tags []string          `json:"tags,omitempty"`
	Meta map[string]string `json:"meta,omitempty"`
	// Canary is "include" (default), "exclude" or "only".
	Canary string `json:"canary,omitempty"`
	// Zone is the preferred zone (default: the proxy's); other zones are
	// used when it has no available instance.
	Zone string `json:"zone,omitempty"`
	// Subsets split the route's traffic by weight, such as 90 to
	// version=v1 and 10 to version=v2 (see client.Filter.Subsets).
	Subsets []Subset `json:"subsets,omitempty"`
	// Balancer is round_robin (default), random, weighted, priority,
	// least_loaded or ring_hash.
	Balancer string `json:"balancer,omitempty"`
	// HashHeader names the request header whose value is the balancing
	// key: the same value goes to the same subset and, with ring_hash,
	// to the same instance while the set does not change.
	HashHeader string `json:"hash_header,omitempty"`
	// Protocol spoken to the instances: "http1" (default) or "h2c"
	// (HTTP/2 without TLS, prior knowledge; for gRPC backends).
	Protocol string `json:"protocol,omitempty"`
	// MaxPending overrides the proxy's MaxPending for this route.
	MaxPending int `json:"max_pending,omitempty"`
}

// Subset is one weighted group of a route's instances.
type Subset struct {
	Name   string            `json:"name,omitempty"`
	Tags   []string          `json:"tags,omitempty"`
	Meta   map[string]string `json:"meta,omitempty"`
	Weight int               `json:"weight"`
}

// Balancers are the policy names a route may give.
var Balancers = []string{"round_robin", "random", "weighted", "priority", "least_loaded", "ring_hash"}

// balancer returns the SDK policy named name ("" is round robin).
func balancer(name string) (balance.Balancer, error) {
	switch name {
	case "", "round_robin":
		return balance.RoundRobin(), nil
	case "random":
		return balance.Random(), nil
	case "weighted":
		return balance.WeightedRandom(), nil
	case "priority":
		return balance.Priority(), nil
	case "least_loaded":
		return balance.LeastLoaded(), nil
	case "ring_hash":
		return balance.RingHash(), nil
	}
	return nil, fmt.Errorf("balancer %q is not one of %s", name, strings.Join(Balancers, ", "))
}

// Validate names every problem of the route.
func (r *Route) Validate() error {
	var errs []error
	if r.Service == "" {
		errs = append(errs, errors.New("service: required"))
	} else if !registry.ValidName(registry.NormalizeName(r.Service)) {
		errs = append(errs, fmt.Errorf("service: %q is not a service name (a DNS label)", r.Service))
	}
	if r.Host == "" && r.PathPrefix == "" {
		errs = append(errs, errors.New("host or path_prefix: one is required"))
	}
	if r.Host != "" {
		if err := validHostPattern(r.Host); err != nil {
			errs = append(errs, fmt.Errorf("host: %w", err))
		}
	}
	if r.PathPrefix != "" && !strings.HasPrefix(r.PathPrefix, "/") {
		errs = append(errs, fmt.Errorf("path_prefix: %q must start with /", r.PathPrefix))
	}
	if r.StripPrefix && r.PathPrefix == "" {
		errs = append(errs, errors.New("strip_prefix: needs a path_prefix"))
	}
	if _, err := canary(r.Canary); err != nil {
		errs = append(errs, fmt.Errorf("canary: %w", err))
	}
	if _, err := balancer(r.Balancer); err != nil {
		errs = append(errs, err)
	}
	switch r.Protocol {
	case "", "http1", "h2c":
	default:
		errs = append(errs, fmt.Errorf("protocol: %q is not http1 or h2c", r.Protocol))
	}
	if r.MaxPending < 0 {
		errs = append(errs, errors.New("max_pending: must not be negative"))
	}
	total := 0
	for i, s := range r.Subsets {
		if s.Weight < 0 {
			errs = append(errs, fmt.Errorf("subsets[%d].weight: must not be negative", i))
		}
		total += max(s.Weight, 0)
	}
	if len(r.Subsets) > 0 && total == 0 {
		errs = append(errs, errors.New("subsets: at least one needs a positive weight"))
	}
	return errors.Join(errs...)
}

func validHostPattern(h string) error {
	name := strings.TrimPrefix(h, "*.")
	if strings.Trim(name, ".") == "" || strings.ContainsAny(name, "*/:?#@[] \t\r\n") {
		return fmt.Errorf("%q is not a host name or *.suffix pattern", h)
	}
	return nil
}

func canary(s string) (client.Canary, error) {
	switch s {
	case "", "include":
		return client.CanaryInclude, nil
	case "exclude":
		return client.CanaryExclude, nil
	case "only":
		return client.CanaryOnly, nil
	}
	return 0, fmt.Errorf("%q is not include, exclude or only", s)
}

// filter is the SDK filter of the route (validated).
func (r *Route) filter() client.Filter {
	b, _ := balancer(r.Balancer)
	c, _ := canary(r.Canary)
	f := client.Filter{Tags: r.Tags, Meta: r.Meta, Canary: c, Zone: r.Zone, Balancer: b}
	for _, s := range r.Subsets {
		f.Subsets = append(f.Subsets, client.Subset{Name: s.Name, Tags: s.Tags, Meta: s.Meta, Weight: s.Weight})
	}
	return f
}

// routesFile is the JSON form of a routes file.
type routesFile struct {
	Routes []Route `json:"routes"`
}

// maxRoutesFile bounds a routes file.
const maxRoutesFile = 4 << 20

// ParseRoutes reads a routes file: {"routes": [Route, ...]}, unknown keys
// rejected, every route validated; the error names each bad route by its
// position.
func ParseRoutes(r io.Reader) ([]Route, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxRoutesFile+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxRoutesFile {
		return nil, fmt.Errorf("routes: larger than %d bytes", maxRoutesFile)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var f routesFile
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("routes: %w", err)
	}
	if dec.More() {
		return nil, errors.New("routes: data after the JSON object")
	}
	var errs []error
	for i := range f.Routes {
		if err := f.Routes[i].Validate(); err != nil {
			errs = append(errs, fmt.Errorf("routes[%d]: %w", i, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return f.Routes, nil
}

// ParseRouteFlag parses the short form of a route given on the command
// line: "HOST=SERVICE", "/PREFIX=SERVICE" or "HOST/PREFIX=SERVICE".
func ParseRouteFlag(s string) (Route, error) {
	match, service, ok := strings.Cut(s, "=")
	if !ok || match == "" || service == "" {
		return Route{}, fmt.Errorf("route %q: want HOST=SERVICE, /PREFIX=SERVICE or HOST/PREFIX=SERVICE", s)
	}
	r := Route{Service: service}
	if i := strings.IndexByte(match, '/'); i >= 0 {
		r.Host, r.PathPrefix = match[:i], match[i:]
	} else {
		r.Host = match
	}
	if err := r.Validate(); err != nil {
		return Route{}, fmt.Errorf("route %q: %w", s, err)
	}
	return r, nil
}

// table finds the route of a request. Routes are checked most specific
// first: an exact host before a host pattern before any host, then the
// longest path prefix; the first match wins. Routes are few (tens), so a
// linear scan over the sorted slice is enough.
type table struct {
	routes []*route
}

// route is one compiled Route.
type route struct {
	Route
	exact  string // lower-cased host, or ""
	suffix string // ".example.com" for "*.example.com", or ""
	up     *upstream
}

func newTable(routes []Route) *table {
	t := &table{}
	for _, r := range routes {
		r.Service = registry.NormalizeName(r.Service)
		c := &route{Route: r}
		h := strings.TrimSuffix(strings.ToLower(r.Host), ".")
		if rest, ok := strings.CutPrefix(h, "*"); ok {
			c.suffix = rest
		} else {
			c.exact = h
		}
		t.routes = append(t.routes, c)
	}
	rank := func(r *route) int {
		switch {
		case r.exact != "":
			return 0
		case r.suffix != "":
			return 1
		}
		return 2
	}
	slices.SortStableFunc(t.routes, func(a, b *route) int {
		if ra, rb := rank(a), rank(b); ra != rb {
			return ra - rb
		}
		if a.suffix != b.suffix {
			return len(b.suffix) - len(a.suffix)
		}
		return len(b.PathPrefix) - len(a.PathPrefix)
	})
	return t
}

// match returns the route for host (normalised by hostOnly) and path, or
// nil.
func (t *table) match(host, path string) *route {
	for _, r := range t.routes {
		switch {
		case r.exact != "":
			if host != r.exact {
				continue
			}
		case r.suffix != "":
			if len(host) <= len(r.suffix) || !strings.HasSuffix(host, r.suffix) {
				continue
			}
		}
		if r.PathPrefix != "" && !hasPathPrefix(path, r.PathPrefix) {
			continue
		}
		return r
	}
	return nil
}

// hasPathPrefix reports whether path starts with prefix at a segment
// boundary.
func hasPathPrefix(path, prefix string) bool {
	if !strings.HasPrefix(path, prefix) {
		return false
	}
	return len(path) == len(prefix) || prefix[len(prefix)-1] == '/' || path[len(prefix)] == '/'
}

// stripPrefix removes prefix from path, keeping a leading "/".
func stripPrefix(path, prefix string) string {
	rest := strings.TrimPrefix(path, strings.TrimSuffix(prefix, "/"))
	if rest == "" || rest[0] != '/' {
		rest = "/" + rest
	}
	return rest
}

// hostOnly lower-cases the request's host and drops its port and a
// trailing dot, without allocating when it is already lower case.
func hostOnly(host string) string {
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.Contains(host[i:], "]") {
		host = host[:i]
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	host = strings.TrimRight(host, ".")
	for i := 0; i < len(host); i++ {
		if c := host[i]; 'A' <= c && c <= 'Z' {
			return strings.ToLower(host)
		}
	}
	return host
}

// defaultService maps a host to a service for requests no route matches:
// a bare name ("web") is that service, and NAME.DOMAIN for one of domains
// ("web.service.roster") is NAME, when NAME is a valid service name.
// Anything else (an IP address, another name) is no service.
func defaultService(host string, domains []string) (string, bool) {
	if host == "" {
		return "", false
	}
	name := ""
	if !strings.Contains(host, ".") {
		name = host
	} else {
		for _, d := range domains {
			if len(host) > len(d)+1 && host[len(host)-len(d)-1] == '.' && strings.HasSuffix(host, d) {
				name = host[:len(host)-len(d)-1]
				break
			}
		}
	}
	if !registry.ValidName(name) {
		return "", false
	}
	return name, true
}
