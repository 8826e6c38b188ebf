package cluster

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/hashicorp/raft"

	"github.com/rosterhq/roster/internal/registry"
)

// The server side of the internal RPCs (paths in wire.go): what the
// leader, or any agent for status and join, answers to other agents.

// rpcHandler serves the internal RPCs.
func (c *Cluster) rpcHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+pathApply, c.serveApply)
	mux.HandleFunc("GET "+pathReadIndex, c.serveReadIndex)
	mux.HandleFunc("POST "+pathLeases, c.serveLeases)
	mux.HandleFunc("POST "+pathJoin, c.serveJoin)
	mux.HandleFunc("GET "+pathStatus, func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, c.status()) })
	mux.HandleFunc("POST "+pathRemove, c.serveRemove)
	mux.HandleFunc("PUT "+pathRestore, c.serveRestore)
	return mux
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

// errNotLeader refuses a leader's RPC before doing anything.
func errNotLeader() error { return fmt.Errorf("%w: %w", registry.ErrNotLeader, raft.ErrNotLeader) }

func (c *Cluster) serveApply(w http.ResponseWriter, r *http.Request) {
	entry, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxEntryBytes))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, &wireError{Kind: wireKinds[registry.KindInternal].name, Msg: "read entry: " + err.Error()})
		return
	}
	resp, err := c.node.ApplyLocal(r.Context(), entry)
	if err != nil {
		writeErr(w, err)
		return
	}
	c.metrics.forwardedIn.Inc()
	writeJSON(w, http.StatusOK, resultToWire(resp))
}

func (c *Cluster) serveReadIndex(w http.ResponseWriter, r *http.Request) {
	idx, err := c.node.ReadIndex(r.Context())
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, wireIndex{Index: idx})
}

func (c *Cluster) serveLeases(w http.ResponseWriter, r *http.Request) {
	var batch []wireLease
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<20)).Decode(&batch); err != nil {
		writeJSON(w, http.StatusBadRequest, &wireError{Kind: wireKinds[registry.KindInternal].name, Msg: "decode leases: " + err.Error()})
		return
	}
	if !c.node.IsLeader() {
		writeErr(w, errNotLeader())
		return
	}
	c.leases.applyRemote(batch)
	w.WriteHeader(http.StatusNoContent)
}

func (c *Cluster) serveRemove(w http.ResponseWriter, r *http.Request) {
	var req wireRemove
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&req); err != nil || req.ID == "" {
		writeJSON(w, http.StatusBadRequest, &wireError{Kind: wireKinds[registry.KindInvalid].name, Msg: "id required",
			Fields: []wireFieldError{{Field: "id", Message: "required"}}})
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
		writeErr(w, errNotLeader())
		return
	}
	idx, err := c.cfg.Restore(r.Body)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, wireIndex{Index: idx})
}
