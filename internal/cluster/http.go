package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/rosterhq/roster/internal/registry"
)

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

// consistentWait bounds the leadership check of a ?consistent read.
const consistentWait = 5 * time.Second

var (
	hdrTrue  = []string{"true"}
	hdrFalse = []string{"false"}
	hdrZero  = []string{"0"}
)

// Wrap adds the cluster's part to every HTTP answer: the staleness headers
// and, for a GET or HEAD with ?consistent, a wait until this agent holds
// every write acknowledged before the request (raftlog.Node.Consistent:
// the leader confirms it still leads; a follower applies up to the
// leader's index). A read that cannot be made consistent is answered 503
// with the reason. Reads without it are served locally, as stale as the
// headers say.
func (c *Cluster) Wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		known, contact := c.leaderState()
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
				err := c.node.Consistent(ctx)
				cancel()
				if err != nil {
					writePublicError(w, err)
					return
				}
				c.metrics.consistentReads.Inc()
				hd[HeaderConsistent] = hdrTrue
				if !c.node.IsLeader() {
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

// Mounter is where the public cluster endpoints mount (httpapi.API).
type Mounter interface {
	Mount(pattern string, h http.Handler)
}

// Mount adds GET /v1/cluster/members and DELETE /v1/cluster/peers/{peer}.
func (c *Cluster) Mount(m Mounter) {
	m.Mount("GET /v1/cluster/members", http.HandlerFunc(c.serveMembers))
	m.Mount("DELETE /v1/cluster/peers/{peer}", http.HandlerFunc(c.serveRemovePeer))
}

// MembersResponse is the answer of GET /v1/cluster/members.
type MembersResponse struct {
	// Leader is the leader's ID as this agent knows it ("" when none).
	Leader  string   `json:"leader"`
	Self    string   `json:"self"`
	Members []Member `json:"members"`
}

func (c *Cluster) serveMembers(w http.ResponseWriter, r *http.Request) {
	ms, err := c.Members(r.Context())
	if err != nil {
		writePublicError(w, err)
		return
	}
	_, leader := c.node.Leader()
	writePublic(w, http.StatusOK, MembersResponse{Leader: leader, Self: c.node.ID(), Members: ms})
}

// serveRemovePeer removes a server, named by ID or raft address, from the
// configuration, through the leader.
func (c *Cluster) serveRemovePeer(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("peer")
	servers, err := c.node.Servers()
	if err != nil {
		writePublicError(w, err)
		return
	}
	id := ""
	for _, s := range servers {
		if s.ID == name || s.Address == name {
			id = s.ID
		}
	}
	if id == "" {
		writePublicError(w, fmt.Errorf("no server %q in the cluster (name an ID or raft address from roster members): %w", name, registry.ErrNotFound))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	err = c.toLeader(ctx, func() error { return c.node.RemoveServer(ctx, id) }, func(cctx context.Context, addr string) error {
		b, _ := json.Marshal(map[string]string{"id": id})
		return c.call(cctx, http.MethodPost, addr, pathRemove, strings.NewReader(string(b)), nil)
	})
	if err != nil {
		writePublicError(w, err)
		return
	}
	writePublic(w, http.StatusOK, map[string]string{"removed": id})
}

// RestoreThroughLeader sends a snapshot to the leader to install, and
// waits until this agent has applied the restore. It returns the index
// the registry is at after.
func (c *Cluster) RestoreThroughLeader(ctx context.Context, body io.Reader) (uint64, error) {
	addr, self, err := c.leaderAddr(ctx, time.Now().Add(c.cfg.LeaderWait))
	if err != nil {
		return 0, err
	}
	if self {
		return 0, errors.New("cluster: this agent leads; restore locally")
	}
	var out struct {
		Index uint64 `json:"index"`
	}
	if err := c.call(ctx, http.MethodPut, addr, pathRestore, body, &out); err != nil {
		return 0, err
	}
	return out.Index, c.node.WaitApplied(ctx, out.Index)
}

// publicError is the error body of the public endpoints, as the native
// API writes it.
type publicError struct {
	Error  string                `json:"error"`
	Fields []registry.FieldError `json:"fields,omitempty"`
}

func writePublicError(w http.ResponseWriter, err error) {
	status := httpStatus(err)
	if errors.Is(err, registry.ErrNotFound) {
		status = http.StatusNotFound
	}
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	body := publicError{Error: err.Error()}
	var verr *registry.ValidationError
	if errors.As(err, &verr) {
		body.Fields = verr.Fields
	}
	writePublic(w, status, body)
}

func writePublic(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"encode response"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
