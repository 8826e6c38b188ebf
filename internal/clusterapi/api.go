// Package clusterapi is the cluster's front door on the HTTP API: the
// staleness headers and ?consistent on every answer of an agent in a
// cluster (Wrap), and GET /v1/cluster/members and DELETE
// /v1/cluster/peers/{peer} (MountOn). It owns their output types and maps
// error kinds to the native API's codes. It reaches the cluster only
// through the small Cluster interface it declares (cluster.Cluster
// implements it); forming the cluster and the internal RPCs stay in
// internal/cluster.
package clusterapi

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/rosterhq/roster/internal/cluster"
)

// Cluster is what the front door needs of this agent's part in a
// cluster. Every method may be called from any request's goroutine, at
// the same time as the others.
type Cluster interface {
	// LeaderState reports whether a leader is known and how long ago
	// this agent heard from it: 0 on the leader, negative when never.
	LeaderState() (known bool, lastContact time.Duration)
	// ConsistentRead returns once this agent holds every write
	// acknowledged before the call, and reports whether it leads.
	ConsistentRead(ctx context.Context) (leads bool, err error)
	// Membership asks every server for its state.
	Membership(ctx context.Context) (cluster.Membership, error)
	// RemovePeer removes a server, named by ID or raft address, through
	// the leader and returns its ID; registry.ErrNotFound when no
	// server has the name.
	RemovePeer(ctx context.Context, name string) (id string, err error)
}

var _ Cluster = (*cluster.Cluster)(nil)

// Staleness headers on every answer of an agent in a cluster.
const (
	// HeaderKnownLeader is "true" while the agent knows a leader.
	HeaderKnownLeader = "X-Roster-Known-Leader"
	// HeaderLastContact is how many milliseconds ago the agent heard from
	// the leader: 0 on the leader, -1 when it never has. A read is at
	// most about that stale.
	HeaderLastContact = "X-Roster-Last-Contact"
	// HeaderConsistent is "true" on an answer to ?consistent.
	HeaderConsistent = "X-Roster-Consistent"
)

const (
	// consistentWait bounds the leadership check of a ?consistent read.
	consistentWait = 5 * time.Second
	// removeWait bounds a peer removal through the leader.
	removeWait = 30 * time.Second
)

var (
	hdrTrue  = []string{"true"}
	hdrFalse = []string{"false"}
	hdrZero  = []string{"0"}
)

// API is the cluster's front door.
type API struct {
	c Cluster
}

// New returns the front door over c.
func New(c Cluster) *API { return &API{c: c} }

// Wrap adds the cluster's part to every HTTP answer: the staleness headers
// and, for a GET or HEAD with ?consistent, a wait until this agent holds
// every write acknowledged before the request (Cluster.ConsistentRead). A
// read that cannot be made consistent is answered 503 with the reason.
// Reads without it are served locally, as stale as the headers say.
func (a *API) Wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		known, contact := a.c.LeaderState()
		hd[HeaderKnownLeader] = hdrFalse
		if known {
			hd[HeaderKnownLeader] = hdrTrue
		}
		switch {
		case contact == 0:
			hd[HeaderLastContact] = hdrZero
		case contact < 0:
			hd[HeaderLastContact] = []string{"-1"}
		default:
			hd[HeaderLastContact] = []string{strconv.FormatInt(contact.Milliseconds(), 10)}
		}
		if (r.Method == http.MethodGet || r.Method == http.MethodHead) && strings.Contains(r.URL.RawQuery, "consistent") {
			if q := r.URL.Query(); q.Has("consistent") {
				ctx, cancel := context.WithTimeout(r.Context(), consistentWait)
				leads, err := a.c.ConsistentRead(ctx)
				cancel()
				if err != nil {
					writeError(w, err)
					return
				}
				hd[HeaderConsistent] = hdrTrue
				if !leads {
					// Satisfied here: the front door need not insist
					// that this agent leads (Consul's API would).
					q.Del("consistent")
					r2 := r.Clone(r.Context())
					r2.URL.RawQuery = q.Encode()
					r = r2
				}
			}
		}
		h.ServeHTTP(w, r)
	})
}

// Mounter is where the endpoints mount (httpapi.API).
type Mounter interface {
	Mount(pattern string, h http.Handler)
}

// MountOn adds GET /v1/cluster/members and DELETE /v1/cluster/peers/{peer}.
func (a *API) MountOn(m Mounter) {
	m.Mount("GET /v1/cluster/members", http.HandlerFunc(a.serveMembers))
	m.Mount("DELETE /v1/cluster/peers/{peer}", http.HandlerFunc(a.serveRemovePeer))
}

// MembersResponse is the answer of GET /v1/cluster/members.
type MembersResponse struct {
	// Leader is the leader's ID as this agent knows it ("" when none).
	Leader  string           `json:"leader"`
	Self    string           `json:"self"`
	Members []cluster.Member `json:"members"`
}

func (a *API) serveMembers(w http.ResponseWriter, r *http.Request) {
	m, err := a.c.Membership(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, MembersResponse{Leader: m.Leader, Self: m.Self, Members: m.Members})
}

// RemovedResponse is the answer of DELETE /v1/cluster/peers/{peer}.
type RemovedResponse struct {
	Removed string `json:"removed"`
}

// serveRemovePeer removes a server, named by ID or raft address, from the
// configuration, through the leader.
func (a *API) serveRemovePeer(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), removeWait)
	defer cancel()
	id, err := a.c.RemovePeer(ctx, r.PathValue("peer"))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, RemovedResponse{Removed: id})
}
