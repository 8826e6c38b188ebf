package consulapi

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-bexpr"

	"github.com/rosterhq/roster/internal/answers"
	"github.com/rosterhq/roster/internal/registry"
)

// Bounds on a ?filter expression: its length, and the parser's steps
// (go-bexpr counts every grammar rule it tries).
const (
	maxFilterLen         = 4096
	maxFilterParserSteps = 1 << 20
)

// queryOptions are the parameters every Consul read takes.
type queryOptions struct {
	index uint64
	wait  time.Duration
	// consistency is the mode served: leader (default), stale or
	// consistent. One node answers all three alike.
	consistency string
	filter      *bexpr.Evaluator
	filterExpr  string
	// nodeMeta holds ?node-meta=key:value pairs; the node must carry all.
	nodeMeta map[string]string
	pretty   bool
	hash     string
}

// parseQuery reads the parameters of a read, with Consul's error texts.
// Accepted and without effect on one node: near, cached, token, ns,
// partition, peer (non-default ns/partition/peer select nothing).
func (a *API) parseQuery(q url.Values) (queryOptions, error) {
	o := queryOptions{consistency: "leader", hash: q.Get("hash")}
	_, o.pretty = q["pretty"]
	if dc := q.Get("dc"); dc != "" && dc != a.node.Datacenter {
		return o, &httpError{code: http.StatusInternalServerError, msg: "No path to datacenter"}
	}
	if s := q.Get("wait"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			return o, &httpError{code: http.StatusBadRequest, msg: "Invalid wait time"}
		}
		o.wait = min(d, registry.MaxWait)
	}
	if s := q.Get("index"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return o, &httpError{code: http.StatusBadRequest, msg: "Invalid index"}
		}
		o.index = n
	}
	_, stale := q["stale"]
	_, consistent := q["consistent"]
	switch {
	case stale && consistent:
		return o, &httpError{code: http.StatusBadRequest, msg: "Cannot specify ?stale with ?consistent, conflicting semantics."}
	case stale:
		o.consistency = "stale"
	case consistent:
		o.consistency = "consistent"
		if !a.cluster.IsLeader() {
			return o, &httpError{code: http.StatusInternalServerError, msg: "No cluster leader"}
		}
	}
	if s := q.Get("filter"); s != "" {
		f, err := newFilter(s)
		if err != nil {
			return o, err
		}
		o.filter, o.filterExpr = f, s
	}
	for _, kv := range q["node-meta"] {
		k, v, ok := strings.Cut(kv, ":")
		if !ok || k == "" {
			return o, &httpError{code: http.StatusBadRequest, msg: "Invalid node-meta: " + strconv.Quote(kv) + " is not key:value"}
		}
		if o.nodeMeta == nil {
			o.nodeMeta = map[string]string{}
		}
		o.nodeMeta[k] = v
	}
	for _, p := range []string{"ns", "partition"} {
		if s := q.Get(p); s != "" && s != "default" {
			o.nodeMeta = map[string]string{"\x00": "no such " + p} // matches no node
		}
	}
	if q.Get("peer") != "" {
		o.nodeMeta = map[string]string{"\x00": "no such peer"}
	}
	return o, nil
}

// newFilter parses a ?filter expression (go-bexpr, as Consul does).
func newFilter(expr string) (*bexpr.Evaluator, error) {
	if len(expr) > maxFilterLen {
		return nil, &httpError{code: http.StatusBadRequest, msg: "Failed to create boolexpr evaluator: filter longer than " + strconv.Itoa(maxFilterLen) + " bytes"}
	}
	f, err := bexpr.CreateEvaluator(expr, bexpr.WithMaxExpressions(maxFilterParserSteps))
	if err != nil {
		return nil, &httpError{code: http.StatusBadRequest, msg: "Failed to create boolexpr evaluator: " + err.Error()}
	}
	return f, nil
}

// keep reports whether v passes the filter. An expression that cannot be
// evaluated on v (a selector naming no field) is the client's error.
func (o *queryOptions) keep(v any) (bool, error) {
	if o.filter == nil {
		return true, nil
	}
	ok, err := o.filter.Evaluate(v)
	if err != nil {
		return false, &httpError{code: http.StatusBadRequest, msg: "Failed to evaluate filter: " + err.Error()}
	}
	return ok, nil
}

// nodeMatches reports whether this node carries every ?node-meta pair.
func (a *API) nodeMatches(o *queryOptions) bool {
	for k, v := range o.nodeMeta {
		if got, ok := a.node.Meta[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// parsePassing reads ?passing: present and empty means true.
func parsePassing(q url.Values) (bool, error) {
	vs, ok := q["passing"]
	if !ok || len(vs) == 0 || vs[0] == "" {
		return ok, nil
	}
	b, err := strconv.ParseBool(vs[0])
	if err != nil {
		return false, &httpError{code: http.StatusBadRequest, msg: "Invalid value for ?passing"}
	}
	return b, nil
}

// block waits as a Consul blocking query does on key, until index()
// passes o.index, the wait ends or the request does; it returns the last
// index read, at least 1.
func (a *API) block(r *http.Request, o *queryOptions, key string, index func() uint64) (uint64, error) {
	var idx uint64
	err := a.reg.Block(r.Context(), key, o.index, o.wait, func() uint64 {
		idx = index()
		return idx
	})
	return max(idx, 1), err
}

// Header values that do not change, shared: net/http only reads them.
var (
	hdrTrue          = []string{"true"}
	hdrFalse         = []string{"false"}
	hdrZero          = []string{"0"}
	hdrBlockingQuery = []string{"blocking-query"}
	hdrConsistency   = map[string][]string{"leader": {"leader"}, "stale": {"stale"}, "consistent": {"consistent"}}
)

// setMeta writes the headers of a read: the index, never 0, and the
// leader and consistency headers Consul's clients parse. Keys are set in
// their canonical form directly: this runs on every read.
func (a *API) setMeta(w http.ResponseWriter, o *queryOptions, index uint64) {
	h := w.Header()
	h["X-Consul-Index"] = []string{strconv.FormatUint(max(index, 1), 10)}
	h["X-Consul-Effective-Consistency"] = hdrConsistency[o.consistency]
	h["X-Consul-Query-Backend"] = hdrBlockingQuery
	a.setLeaderHeaders(w)
}

// setLeaderHeaders writes X-Consul-KnownLeader and X-Consul-LastContact,
// which the Go client parses on every read.
func (a *API) setLeaderHeaders(w http.ResponseWriter) {
	h := w.Header()
	known, contact := a.leaderState()
	h["X-Consul-Knownleader"] = hdrFalse
	if known {
		h["X-Consul-Knownleader"] = hdrTrue
	}
	h["X-Consul-Lastcontact"] = hdrZero
	if contact > 0 {
		h["X-Consul-Lastcontact"] = []string{strconv.FormatInt(contact.Milliseconds(), 10)}
	}
}

// leaderState reports whether a leader is known, and how long ago this
// node heard from it (0 on the leader).
func (a *API) leaderState() (bool, time.Duration) {
	if a.cluster.IsLeader() {
		return true, 0
	}
	_, id := a.cluster.Leader()
	return id != "", max(time.Since(a.cluster.LastContact()), 0)
}

// cacheKey names an answer: the same key at the same index is the same
// answer.
func cacheKey(kind, service string, passing bool, tags []string, o *queryOptions) string {
	var k answers.Key
	k.Field('k', kind)
	k.Field('s', service)
	k.Field('p', strconv.FormatBool(passing))
	k.Field('y', strconv.FormatBool(o.pretty))
	k.Field('f', o.filterExpr)
	k.Set('t', tags)
	k.Map('m', 'v', o.nodeMeta)
	return k.String()
}
