package httpapi

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/rosterhq/roster/internal/answers"
	"github.com/rosterhq/roster/internal/registry"
)

// blocking holds a read's ?index= and ?wait=.
type blocking struct {
	index uint64
	wait  time.Duration
}

func parseBlocking(q url.Values, v *registry.ValidationError) blocking {
	var b blocking
	if s := q.Get("index"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			v.Add("index", "must be a non-negative integer")
		}
		b.index = n
	}
	if s := q.Get("wait"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			// A bare number is seconds.
			n, nerr := strconv.ParseUint(s, 10, 32)
			if nerr != nil {
				v.Add("wait", "must be a duration such as \"30s\"")
			}
			d = time.Duration(n) * time.Second
		}
		if d < 0 {
			v.Add("wait", "must not be negative")
		}
		b.wait = min(d, registry.MaxWait)
	}
	return b
}

// parseQuery reads a service's instance filters:
// ?status=passing|warning|any, ?tag=T (repeatable), ?meta=K=V (repeatable),
// ?zone=Z.
func parseQuery(service string, q url.Values, v *registry.ValidationError) registry.Query {
	rq := registry.Query{Service: registry.NormalizeName(service), Zone: strings.ToLower(q.Get("zone"))}
	if !registry.ValidName(rq.Service) {
		v.Add("service", "must be a DNS label")
	}
	switch q.Get("status") {
	case "", "any":
		rq.Health = registry.AnyHealth
	case "passing":
		rq.Health = registry.PassingOnly
	case "warning":
		rq.Health = registry.NotCritical
	default:
		v.Add("status", "must be passing, warning or any")
	}
	rq.Tags = q["tag"]
	for _, kv := range q["meta"] {
		k, val, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			v.Add("meta", "must be key=value")
			continue
		}
		if rq.Meta == nil {
			rq.Meta = map[string]string{}
		}
		rq.Meta[k] = val
	}
	return rq
}

// cacheKey names a query's answer: the same key at the same service index
// is the same answer.
func cacheKey(q *registry.Query) string {
	var k answers.Key
	k.Field('s', q.Service)
	k.Field('h', strconv.Itoa(int(q.Health)))
	k.Field('z', q.Zone)
	k.Set('t', q.Tags)
	k.Map('k', 'v', q.Meta)
	return k.String()
}

type instancesAnswer struct {
	Service   string        `json:"service"`
	Index     uint64        `json:"index"`
	Instances []instanceOut `json:"instances"`
}

// listInstances answers a service's instances, blocking on ?index=. An
// answer is encoded once per (query, service index) and served from the
// cache after that, to every waiter a change wakes at once.
func (a *API) listInstances(w http.ResponseWriter, r *http.Request) {
	v := &registry.ValidationError{}
	qv := r.URL.Query()
	q := parseQuery(r.PathValue("service"), qv, v)
	blk := parseBlocking(qv, v)
	if err := v.Err(); err != nil {
		writeError(w, err)
		return
	}
	// Wait on the service's index alone; the answer for an index is built
	// once, however many waiters the change wakes.
	var idx uint64
	err := a.reg.Block(r.Context(), registry.WatchService(q.Service), blk.index, blk.wait, func() uint64 {
		idx = a.reg.ServiceIndex(q.Service)
		return idx
	})
	if err != nil {
		writeError(w, err)
		return
	}
	// Beside the body, the cache keeps its gzip encoding, made on demand.
	ans, hit, err := a.cache.Get(cacheKey(&q), idx, func() ([]byte, uint64, any, error) {
		// Shared by every waiter: not bound to this caller's context.
		res, err := a.reg.Instances(context.WithoutCancel(r.Context()), q, 0, 0)
		if err != nil {
			return nil, 0, nil, err
		}
		b, err := encodeJSON(instancesAnswer{Service: q.Service, Index: res.Index, Instances: toInstancesOut(res.Instances)})
		return b, res.Index, nil, err
	})
	if err != nil {
		writeError(w, err)
		return
	}
	if hit {
		a.metrics.cacheHits.Inc()
	}
	setIndex(w, ans.Index)
	writeCachedBody(w, r, ans.Body, ans.Gzip)
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

type servicesAnswer struct {
	Index    uint64                    `json:"index"`
	Services []registry.ServiceSummary `json:"services"`
}

func (a *API) listServices(w http.ResponseWriter, r *http.Request) {
	v := &registry.ValidationError{}
	blk := parseBlocking(r.URL.Query(), v)
	if err := v.Err(); err != nil {
		writeError(w, err)
		return
	}
	idx, svcs, err := a.reg.Services(r.Context(), blk.index, blk.wait)
	if err != nil {
		writeError(w, err)
		return
	}
	setIndex(w, idx)
	writeJSON(w, http.StatusOK, servicesAnswer{Index: idx, Services: nonNil(svcs)})
}
