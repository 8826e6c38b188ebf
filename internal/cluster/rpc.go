package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/hashicorp/raft"

	"github.com/rosterhq/roster/internal/registry"
	"github.com/rosterhq/roster/internal/store"
)

// Internal RPCs, HTTP/1.1 over the raft port (protoRPC). Only agents of
// the cluster reach them (with TLS on, only holders of a certificate the
// CA signed).
const (
	pathApply     = "/internal/apply"      // POST entry bytes → wireResult (leader)
	pathReadIndex = "/internal/read-index" // GET → {"index": N} (leader)
	pathLeases    = "/internal/leases"     // POST []wireLease (leader)
	pathJoin      = "/internal/join"       // POST joinRequest → joinResponse
	pathStatus    = "/internal/status"     // GET → Member (any agent, about itself)
	pathRemove    = "/internal/remove"     // POST {"id": ID} (leader)
	pathRestore   = "/internal/snapshot"   // PUT snapshot → {"index": N} (leader)
)

// maxEntryBytes bounds a forwarded entry: far above any valid op.
const maxEntryBytes = 4 << 20

// wireResult is a store.Response on the wire.
type wireResult struct {
	Index    uint64             `json:"index"`
	Instance *registry.Instance `json:"instance,omitempty"`
	Created  bool               `json:"created,omitempty"`
	// Err is the op's own error (not found, condition failed, ...).
	Err *wireError `json:"err,omitempty"`
}

// wireError is an error on the wire: its kind, so that errors.Is holds
// on the other side, and its text.
type wireError struct {
	Kind   string                `json:"kind"`
	Msg    string                `json:"error"`
	Fields []registry.FieldError `json:"fields,omitempty"`
	// Retry: the request was refused before anything was done (this
	// agent does not lead), so another leader may be asked.
	Retry bool `json:"retry,omitempty"`
}

var errKinds = []struct {
	name string
	err  error
}{
	{"not_found", registry.ErrNotFound},
	{"conflict", registry.ErrConflict},
	{"no_ttl", registry.ErrNoTTL},
	{"not_leader", registry.ErrNotLeader},
	{"not_ready", registry.ErrNotReady},
	{"deadline", context.DeadlineExceeded},
	{"canceled", context.Canceled},
}

func toWire(err error) *wireError {
	if err == nil {
		return nil
	}
	w := &wireError{Kind: "other", Msg: err.Error()}
	var verr *registry.ValidationError
	if errors.As(err, &verr) {
		w.Kind, w.Fields = "validation", verr.Fields
		return w
	}
	for _, k := range errKinds {
		if errors.Is(err, k.err) {
			w.Kind = k.name
			break
		}
	}
	// raft refuses these before appending anything.
	w.Retry = errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipTransferInProgress)
	return w
}

func (w *wireError) err() error {
	if w == nil {
		return nil
	}
	if w.Kind == "validation" {
		return &registry.ValidationError{Fields: w.Fields}
	}
	for _, k := range errKinds {
		if k.name == w.Kind {
			return &remoteError{kind: k.err, msg: w.Msg, retry: w.Retry}
		}
	}
	return &remoteError{msg: w.Msg}
}

// remoteError is an error answered by another agent.
type remoteError struct {
	kind  error
	msg   string
	retry bool
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.kind }

// httpStatus is the status an internal answer carrying err has.
func httpStatus(err error) int {
	switch {
	case errors.Is(err, registry.ErrNotLeader), errors.Is(err, registry.ErrNotReady):
		return http.StatusServiceUnavailable
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout
	}
	var verr *registry.ValidationError
	if errors.As(err, &verr) {
		return http.StatusBadRequest
	}
	return http.StatusInternalServerError
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"kind":"other","error":"encode response"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

func writeErr(w http.ResponseWriter, err error) { writeJSON(w, httpStatus(err), toWire(err)) }

// rpcHandler serves the internal RPCs.
func (c *Cluster) rpcHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+pathApply, c.serveApply)
	mux.HandleFunc("GET "+pathReadIndex, c.serveReadIndex)
	mux.HandleFunc("POST "+pathLeases, c.serveLeases)
	mux.HandleFunc("POST "+pathJoin, c.serveJoin)
	mux.HandleFunc("GET "+pathStatus, func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, c.self()) })
	mux.HandleFunc("POST "+pathRemove, c.serveRemove)
	mux.HandleFunc("PUT "+pathRestore, c.serveRestore)
	return mux
}

func (c *Cluster) serveApply(w http.ResponseWriter, r *http.Request) {
	entry, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxEntryBytes))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, &wireError{Kind: "other", Msg: "read entry: " + err.Error()})
		return
	}
	resp, err := c.node.ApplyLocal(r.Context(), entry)
	if err != nil {
		writeErr(w, err)
		return
	}
	c.metrics.forwardedIn.Inc()
	writeJSON(w, http.StatusOK, wireResult{Index: resp.Result.Index, Instance: resp.Result.Instance, Created: resp.Result.Created, Err: toWire(resp.Err)})
}

func (c *Cluster) serveReadIndex(w http.ResponseWriter, r *http.Request) {
	idx, err := c.node.ReadIndex(r.Context())
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]uint64{"index": idx})
}

// wireLease is one renewal (or, with Forget, a removal) of a lease.
type wireLease struct {
	Service string `json:"s"`
	ID      string `json:"i"`
	Forget  bool   `json:"f,omitempty"`
}

func (c *Cluster) serveLeases(w http.ResponseWriter, r *http.Request) {
	var batch []wireLease
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<20)).Decode(&batch); err != nil {
		writeJSON(w, http.StatusBadRequest, &wireError{Kind: "other", Msg: "decode leases: " + err.Error()})
		return
	}
	if !c.node.IsLeader() {
		writeErr(w, fmt.Errorf("%w: %w", registry.ErrNotLeader, raft.ErrNotLeader))
		return
	}
	c.leases.applyRemote(batch)
	w.WriteHeader(http.StatusNoContent)
}

func (c *Cluster) serveRemove(w http.ResponseWriter, r *http.Request) {
	var req struct {
		ID string `json:"id"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&req); err != nil || req.ID == "" {
		writeJSON(w, http.StatusBadRequest, &wireError{Kind: "validation", Msg: "id required", Fields: []registry.FieldError{{Field: "id", Message: "required"}}})
		return
	}
	if err := c.node.RemoveServer(r.Context(), req.ID); err != nil {
		writeErr(w, err)
		return
	}
	c.log.Info("server removed from the cluster", "id", req.ID)
	w.WriteHeader(http.StatusNoContent)
}

func (c *Cluster) serveRestore(w http.ResponseWriter, r *http.Request) {
	if c.cfg.Restore == nil || !c.node.IsLeader() {
		writeErr(w, fmt.Errorf("%w: %w", registry.ErrNotLeader, raft.ErrNotLeader))
		return
	}
	idx, err := c.cfg.Restore(r.Body)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]uint64{"index": idx})
}

// call sends one internal RPC to addr and decodes a 2xx answer into out
// (when non-nil); other answers become the error they carry.
func (c *Cluster) call(ctx context.Context, method, addr, path string, body io.Reader, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, "http://"+addr+path, body)
	if err != nil {
		return err
	}
	return c.do(req, out)
}

// do sends an internal RPC request; see call.
func (c *Cluster) do(req *http.Request, out any) error {
	resp, err := c.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		var we wireError
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if json.Unmarshal(b, &we) != nil || we.Kind == "" {
			return fmt.Errorf("%s %s: HTTP %d: %s", req.Method, req.URL, resp.StatusCode, bytes.TrimSpace(b))
		}
		return we.err()
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// retriable reports whether a failed call to the leader may be sent
// again, to it or a new leader: nothing was sent, or the agent refused
// before doing anything.
func retriable(err error) bool {
	var de *dialError
	if errors.As(err, &de) {
		return true
	}
	var re *remoteError
	return errors.As(err, &re) && re.retry
}

// leaderAddr waits, up to the deadline, for a leader other than this
// agent to be known; self is true when this agent leads.
func (c *Cluster) leaderAddr(ctx context.Context, deadline time.Time) (addr string, self bool, err error) {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		if c.node.IsLeader() {
			return "", true, nil
		}
		if a, id := c.node.Leader(); id != "" && id != c.node.ID() {
			return a, false, nil
		}
		if time.Now().After(deadline) {
			return "", false, c.noLeader(nil)
		}
		select {
		case <-ctx.Done():
			return "", false, fmt.Errorf("waiting for a leader: %w", ctx.Err())
		case <-t.C:
		}
	}
}

// noLeader is the error a write or consistent read gets while no leader
// answers: HTTP 503 "no leader" at the front doors. last is the last
// attempt's error, if any.
func (c *Cluster) noLeader(last error) error {
	msg := "no leader: no cluster leader is known"
	if lc := c.node.LastContact(); !lc.IsZero() {
		msg += fmt.Sprintf("; last contact with one %s ago", time.Since(lc).Round(time.Millisecond))
	}
	msg += " (is a quorum of servers up and connected?)"
	if last != nil {
		msg += "; last attempt: " + last.Error()
	}
	return &remoteError{kind: registry.ErrNotLeader, msg: msg}
}

// toLeader runs call against the leader, waiting for one and following a
// change of leader for up to LeaderWait, as long as the failure says
// nothing was done. local runs instead when this agent leads. A call is
// cancelled when this agent stops taking its target for the leader (a
// partition, an election), so it never hangs on a lost leader.
func (c *Cluster) toLeader(ctx context.Context, local func() error, call func(ctx context.Context, addr string) error) error {
	deadline := time.Now().Add(c.cfg.LeaderWait)
	for {
		addr, self, err := c.leaderAddr(ctx, deadline)
		if err != nil {
			return err
		}
		if self {
			err = local()
		} else {
			err = c.whileLeader(ctx, addr, call)
		}
		switch {
		case err == nil, !retriable(err), ctx.Err() != nil:
			return err
		case time.Now().After(deadline):
			return c.noLeader(err)
		}
		c.log.Debug("leader call failed; retrying", "leader", addr, "err", err)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// whileLeader runs call(addr), cancelling it if this agent's view of the
// leader moves away from addr.
func (c *Cluster) whileLeader(ctx context.Context, addr string, call func(ctx context.Context, addr string) error) error {
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-cctx.Done():
				return
			case <-t.C:
				if a, _ := c.node.Leader(); a != addr {
					cancel()
					return
				}
			}
		}
	}()
	err := call(cctx, addr)
	if err != nil && cctx.Err() != nil && ctx.Err() == nil {
		return &remoteError{kind: registry.ErrNotLeader, msg: fmt.Sprintf("the leader %s was lost during the call: %v", addr, err), retry: retriable(err)}
	}
	return err
}

// Forward implements raftlog.Forwarder.
func (c *Cluster) Forward(ctx context.Context, entry []byte) (store.Response, error) {
	var resp store.Response
	err := c.toLeader(ctx, func() error {
		var err error
		resp, err = c.node.ApplyLocal(ctx, entry)
		if errors.Is(err, raft.ErrNotLeader) {
			// Refused before appending: the new leader may take it.
			return &remoteError{kind: registry.ErrNotLeader, msg: err.Error(), retry: true}
		}
		return err
	}, func(cctx context.Context, addr string) error {
		var wr wireResult
		if err := c.call(cctx, http.MethodPost, addr, pathApply, bytes.NewReader(entry), &wr); err != nil {
			var de *dialError
			var re *remoteError
			switch {
			case errors.As(err, &de), errors.As(err, &re):
				return err
			case ctx.Err() != nil:
				return fmt.Errorf("forward to the leader: outcome unknown: %w", ctx.Err())
			case cctx.Err() != nil:
				return err // whileLeader says why
			}
			// The leader went away with the write in flight.
			return &remoteError{kind: registry.ErrNotLeader, msg: fmt.Sprintf("forward to the leader %s: outcome unknown: %v", addr, err)}
		}
		resp = store.Response{Result: registry.ApplyResult{Index: wr.Index, Instance: wr.Instance, Created: wr.Created}, Err: wr.Err.err()}
		return nil
	})
	if err == nil {
		c.metrics.forwardedOut.Inc()
	}
	return resp, err
}

// ReadIndex implements raftlog.Forwarder.
func (c *Cluster) ReadIndex(ctx context.Context) (uint64, error) {
	var idx uint64
	err := c.toLeader(ctx, func() error {
		var err error
		idx, err = c.node.ReadIndex(ctx)
		if errors.Is(err, registry.ErrNotLeader) {
			// Leadership moved while confirming it: ask the new leader.
			return &remoteError{kind: registry.ErrNotLeader, msg: err.Error(), retry: true}
		}
		return err
	}, func(cctx context.Context, addr string) error {
		var out struct {
			Index uint64 `json:"index"`
		}
		if err := c.call(cctx, http.MethodGet, addr, pathReadIndex, nil, &out); err != nil {
			// A read index changes nothing: it may always be asked again.
			var re *remoteError
			if errors.As(err, &re) && re.kind != nil {
				return &remoteError{kind: re.kind, msg: re.msg, retry: true}
			}
			return &remoteError{kind: registry.ErrNotLeader, msg: "read index from the leader " + addr + ": " + err.Error(), retry: true}
		}
		idx = out.Index
		return nil
	})
	return idx, err
}
