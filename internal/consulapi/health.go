package consulapi

import (
	"context"
	"net/http"
	"strings"

	"github.com/rosterhq/roster/internal/registry"
)

// serviceQuery reads the parameters of /v1/health/service and
// /v1/catalog/service: the read options, the service and its filters.
func (a *API) serviceQuery(r *http.Request, withPassing bool) (queryOptions, registry.Query, bool, error) {
	q := r.URL.Query()
	o, err := a.parseQuery(q)
	if err != nil {
		return o, registry.Query{}, false, err
	}
	passing := false
	if withPassing {
		if passing, err = parsePassing(q); err != nil {
			return o, registry.Query{}, false, err
		}
	}
	rq := registry.Query{Service: registry.NormalizeName(r.PathValue("service")), Tags: q["tag"]}
	if passing {
		// Consul drops an entry when any of its checks, the node's
		// included, is not passing; the node's own check always is.
		rq.Health = registry.PassingOnly
	}
	return o, rq, passing, nil
}

// serviceAnswer blocks on the service and serves the encoded answer built
// by each, once per (query, index).
func (a *API) serviceAnswer(w http.ResponseWriter, r *http.Request, kind string, withPassing bool, each func(in *registry.Instance) any) {
	o, rq, passing, err := a.serviceQuery(r, withPassing)
	if err != nil {
		a.writeError(w, err)
		return
	}
	// Consul matches ?tag without regard to case; the registry's tag
	// filter does not, so the tags are matched here.
	tags := lowerTags(rq.Tags)
	rq.Tags = nil
	idx, err := a.block(r, &o, registry.WatchService(rq.Service), func() uint64 { return a.reg.ServiceIndex(rq.Service) })
	if err != nil {
		a.writeError(w, err)
		return
	}
	ans, hit, err := a.cache.Get(cacheKey(kind, rq.Service, passing, tags, &o), idx, func() ([]byte, uint64, any, error) {
		res, err := a.reg.Instances(context.WithoutCancel(r.Context()), rq, 0, 0)
		if err != nil {
			return nil, 0, nil, err
		}
		out := make([]any, 0, len(res.Instances))
		if a.nodeMatches(&o) {
			for _, in := range res.Instances {
				if !hasTags(in, tags) {
					continue
				}
				v := each(in)
				ok, err := o.keep(v)
				if err != nil {
					return nil, 0, nil, err
				}
				if ok {
					out = append(out, v)
				}
			}
		}
		b, err := encode(out, o.pretty)
		return b, res.Index, nil, err
	})
	if err != nil {
		a.writeError(w, err)
		return
	}
	if hit {
		a.metrics.cacheHits.Inc()
	}
	a.setMeta(w, &o, ans.Index)
	writeCachedJSON(w, r, ans.Body, ans.Gzip)
}

// lowerTags returns tags lower-cased, as Consul compares them.
func lowerTags(tags []string) []string {
	out := make([]string, len(tags))
	for i, t := range tags {
		out[i] = strings.ToLower(t)
	}
	return out
}

// hasTags reports whether in carries every one of tags (lower-cased),
// without regard to case, as Consul's ?tag filter matches.
func hasTags(in *registry.Instance, tags []string) bool {
	for _, want := range tags {
		found := false
		for _, t := range in.Tags {
			if t == want || strings.ToLower(t) == want {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// healthService answers GET /v1/health/service/{service}: the service's
// instances with their node and checks, blocking on the service's own
// index. An unknown service is an empty list.
func (a *API) healthService(w http.ResponseWriter, r *http.Request) {
	a.serviceAnswer(w, r, "health", true, func(in *registry.Instance) any { return a.toServiceEntry(in) })
}

// healthChecks answers GET /v1/health/checks/{service}: the checks of the
// service's instances.
func (a *API) healthChecks(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	o, err := a.parseQuery(q)
	if err != nil {
		a.writeError(w, err)
		return
	}
	svc := registry.NormalizeName(r.PathValue("service"))
	var (
		res  registry.Result
		rerr error
	)
	idx, err := a.block(r, &o, registry.WatchService(svc), func() uint64 {
		res, rerr = a.reg.Instances(r.Context(), registry.Query{Service: svc}, 0, 0)
		return res.Index
	})
	if err == nil {
		err = rerr
	}
	if err == nil {
		a.answerChecks(w, &o, idx, res.Instances, false, func(string) bool { return true })
		return
	}
	a.writeError(w, err)
}

// answerChecks writes the checks of instances (and the node's own with
// node set), those for which want(status) holds and the filter keeps.
func (a *API) answerChecks(w http.ResponseWriter, o *queryOptions, idx uint64, instances []*registry.Instance, node bool, want func(string) bool) {
	out := []healthCheck{}
	if a.nodeMatches(o) {
		all := make([]healthCheck, 0, len(instances)+1)
		if node {
			all = append(all, a.nodeCheck())
		}
		for _, in := range instances {
			all = a.toHealthChecks(in, all)
		}
		for _, c := range all {
			ok, err := o.keep(c)
			if err != nil {
				a.writeError(w, err)
				return
			}
			if ok && want(c.Status) {
				out = append(out, c)
			}
		}
	}
	a.writeAnswer(w, o, idx, out)
}

// writeAnswer encodes v as a read's answer at idx.
func (a *API) writeAnswer(w http.ResponseWriter, o *queryOptions, idx uint64, v any) {
	b, err := encode(v, o.pretty)
	if err != nil {
		a.writeError(w, err)
		return
	}
	a.setMeta(w, o, idx)
	writeJSONBody(w, b)
}

// healthState answers GET /v1/health/state/{state}: every check in that
// state (any, passing, warning, critical), the node's included, blocking
// on the whole registry.
func (a *API) healthState(w http.ResponseWriter, r *http.Request) {
	state := r.PathValue("state")
	switch state {
	case "any", "passing", "warning", "critical":
	default:
		writeText(w, http.StatusBadRequest, "Invalid check state")
		return
	}
	a.allChecks(w, r, func(status string) bool { return state == "any" || status == state })
}

// healthNode answers GET /v1/health/node/{node}: the node's checks and
// those of its services; another node has none.
func (a *API) healthNode(w http.ResponseWriter, r *http.Request) {
	if !strings.EqualFold(r.PathValue("node"), a.node.Node) {
		a.allChecks(w, r, func(string) bool { return false })
		return
	}
	a.allChecks(w, r, func(string) bool { return true })
}

func (a *API) allChecks(w http.ResponseWriter, r *http.Request, want func(string) bool) {
	o, idx, all, ok := a.everyInstance(w, r)
	if ok {
		a.answerChecks(w, &o, idx, all, true, want)
	}
}

// everyInstance parses a read's query options and blocks on the services
// list, then reads every instance (allInstances). On an error it answers
// it and returns false.
func (a *API) everyInstance(w http.ResponseWriter, r *http.Request) (queryOptions, uint64, []*registry.Instance, bool) {
	o, err := a.parseQuery(r.URL.Query())
	if err != nil {
		a.writeError(w, err)
		return o, 0, nil, false
	}
	var (
		all  []*registry.Instance
		rerr error
	)
	idx, err := a.block(r, &o, registry.WatchServices, func() uint64 {
		var idx uint64
		idx, all, rerr = a.allInstances(r.Context())
		return idx
	})
	if err == nil {
		err = rerr
	}
	if err != nil {
		a.writeError(w, err)
		return o, 0, nil, false
	}
	return o, idx, all, true
}

// allInstances lists every instance of every service, services by name
// and instances by ID, with the index of the services list read first:
// the answer is at least that new.
func (a *API) allInstances(ctx context.Context) (uint64, []*registry.Instance, error) {
	idx, svcs, err := a.reg.Services(ctx, 0, 0)
	if err != nil {
		return 0, nil, err
	}
	var all []*registry.Instance
	for _, s := range svcs {
		res, err := a.reg.Instances(ctx, registry.Query{Service: s.Name}, 0, 0)
		if err != nil {
			return 0, nil, err
		}
		all = append(all, res.Instances...)
	}
	return idx, all, nil
}
