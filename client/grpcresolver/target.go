package grpcresolver

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/rosterhq/roster/client"
	"github.com/rosterhq/roster/client/balance"
)

// spec is a parsed dial target: the service, the SDK filter its query
// selects, and the request header whose value keys hashing picks.
type spec struct {
	service    string
	filter     client.Filter
	policy     string
	hashHeader string
}

// policies are the balancing policies a target may choose with
// ?balancer=; the default is round_robin (as in the SDK).
var policies = map[string]func() balance.Balancer{
	"round_robin":     balance.RoundRobin,
	"random":          balance.Random,
	"weighted_random": balance.WeightedRandom,
	"priority":        balance.Priority,
	"ring_hash":       balance.RingHash,
	"least_loaded":    balance.LeastLoaded,
}

// parseTarget reads a target's authority, endpoint (the service) and query:
//
//	roster:///payment-service?tag=grpc&meta=version=v2&canary=exclude&zone=eu-1a
//	    &balancer=ring_hash&hash_header=user-id&subset=90:version=v1&subset=10:version=v2
//
// Every parameter is optional; tag, meta and subset repeat.
func parseTarget(authority, endpoint, rawQuery string) (*spec, error) {
	if authority != "" {
		return nil, fmt.Errorf("roster target: authority %q: the agent is the client.Resolver's; write roster:///service", authority)
	}
	s := &spec{service: strings.ToLower(endpoint), policy: "round_robin"}
	if !validLabel(s.service) {
		return nil, fmt.Errorf("roster target: service %q: want a DNS label (1-63 of a-z, 0-9, -), as in roster:///payment-service", endpoint)
	}
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return nil, fmt.Errorf("roster target: query: %w", err)
	}
	for k, vs := range q {
		switch k {
		case "tag":
			for _, v := range vs {
				if v == "" {
					return nil, fmt.Errorf("roster target: empty tag")
				}
				s.filter.Tags = append(s.filter.Tags, v)
			}
		case "meta":
			m, err := parsePairs(vs, "meta")
			if err != nil {
				return nil, err
			}
			s.filter.Meta = m
		case "subset":
			for _, v := range vs {
				sub, err := parseSubset(v)
				if err != nil {
					return nil, err
				}
				s.filter.Subsets = append(s.filter.Subsets, sub)
			}
		default:
			if len(vs) != 1 {
				return nil, fmt.Errorf("roster target: %s given %d times", k, len(vs))
			}
			v := vs[0]
			switch k {
			case "canary":
				switch v {
				case "include":
					s.filter.Canary = client.CanaryInclude
				case "exclude":
					s.filter.Canary = client.CanaryExclude
				case "only":
					s.filter.Canary = client.CanaryOnly
				default:
					return nil, fmt.Errorf("roster target: canary=%q: want include, exclude or only", v)
				}
			case "zone":
				v = strings.ToLower(v)
				if !validLabel(v) {
					return nil, fmt.Errorf("roster target: zone %q: want a DNS label", v)
				}
				s.filter.Zone = v
			case "balancer":
				if policies[v] == nil {
					return nil, fmt.Errorf("roster target: balancer=%q: want round_robin, random, weighted_random, priority, ring_hash or least_loaded", v)
				}
				s.policy = v
			case "hash_header":
				if v == "" || strings.ContainsAny(v, " \t\r\n:") {
					return nil, fmt.Errorf("roster target: hash_header %q: want a metadata key", v)
				}
				s.hashHeader = strings.ToLower(v)
			default:
				return nil, fmt.Errorf("roster target: unknown parameter %q (want tag, meta, canary, zone, subset, balancer, hash_header)", k)
			}
		}
	}
	s.filter.Balancer = policies[s.policy]()
	return s, nil
}

// parsePairs reads key=value pairs.
func parsePairs(vs []string, what string) (map[string]string, error) {
	m := make(map[string]string, len(vs))
	for _, v := range vs {
		k, val, ok := strings.Cut(v, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("roster target: %s %q: want key=value", what, v)
		}
		m[k] = val
	}
	return m, nil
}

// parseSubset reads weight:key=value[,key=value...], such as
// 90:version=v1.
func parseSubset(v string) (client.Subset, error) {
	w, sel, ok := strings.Cut(v, ":")
	weight, err := strconv.Atoi(w)
	if !ok || err != nil || weight < 0 || weight > 1_000_000 {
		return client.Subset{}, fmt.Errorf("roster target: subset %q: want weight:key=value[,key=value], such as 90:version=v1", v)
	}
	meta, err := parsePairs(strings.Split(sel, ","), "subset")
	if err != nil {
		return client.Subset{}, err
	}
	return client.Subset{Name: sel, Meta: meta, Weight: weight}, nil
}

// validLabel reports whether s is a DNS label as the registry accepts for
// services and zones (after folding upper case).
func validLabel(s string) bool {
	if len(s) == 0 || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}
