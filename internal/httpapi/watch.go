package httpapi

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/rosterhq/roster/internal/registry"
)

// watchEvent is the data of one SSE event. The first event of a stream is
// a "snapshot" (the whole filtered instance set); each later change to the
// set is one "change" event carrying every instance added or updated and
// every one removed, so a client that applies events in order holds the
// same set as the registry at that index. Each event's SSE id is its
// index: a client that reconnects with Last-Event-ID (or ?index=) resumes
// with changes when it is still current, and otherwise gets a fresh
// snapshot — never a gap.
type watchEvent struct {
	Index     uint64               `json:"index"`
	Instances []*registry.Instance `json:"instances,omitempty"`
	Upserted  []*registry.Instance `json:"upserted,omitempty"`
	Deleted   []registry.Key       `json:"deleted,omitempty"`
}

func (a *API) watch(w http.ResponseWriter, r *http.Request) {
	v := &registry.ValidationError{}
	qv := r.URL.Query()
	q := parseQuery(r.PathValue("service"), qv, v)
	blk := parseBlocking(qv, v)
	if id := r.Header.Get("Last-Event-ID"); id != "" {
		n, err := strconv.ParseUint(id, 10, 64)
		if err != nil {
			v.Add("Last-Event-ID", "must be an index")
		}
		blk.index = n
	}
	if err := v.Err(); err != nil {
		writeError(w, err)
		return
	}
	ctx := r.Context()
	// A first read both checks readiness and finds where the client is.
	res, err := a.reg.Instances(ctx, q, 0, 0)
	if err != nil {
		writeError(w, err)
		return
	}
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Time{})
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	setIndex(w, res.Index)
	w.WriteHeader(http.StatusOK)
	// A resumed stream may have nothing to send yet: send the headers now.
	if rc.Flush() != nil {
		return
	}
	bw := bufio.NewWriter(w)
	send := func(event string, ev watchEvent) error {
		b, err := json.Marshal(ev)
		if err != nil {
			return err
		}
		fmt.Fprintf(bw, "event: %s\nid: %d\ndata: %s\n\n", event, ev.Index, b)
		if err := bw.Flush(); err != nil {
			return err
		}
		return rc.Flush()
	}
	a.metrics.watchers.Inc()
	defer a.metrics.watchers.Dec()

	// The client is current only if it names exactly the service's index.
	have := map[string]uint64{}
	for _, in := range res.Instances {
		have[in.ID] = in.ModifyIndex
	}
	last := res.Index
	if blk.index != res.Index {
		if send("snapshot", watchEvent{Index: res.Index, Instances: nonNil(res.Instances)}) != nil {
			return
		}
	}
	keepAlive := time.NewTicker(a.cfg.KeepAlive)
	defer keepAlive.Stop()
	for {
		select {
		case <-a.reg.Draining():
			return // the agent is shutting down; the client reconnects
		default:
		}
		waitCtx, cancel := contextWithTicker(ctx, keepAlive.C)
		res, err := a.reg.Instances(waitCtx, q, last, registry.MaxWait)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err != nil || res.Index == last {
			// Keep-alive tick, wait limit, or a transient error.
			if _, werr := fmt.Fprint(bw, ": keep-alive\n\n"); werr != nil || bw.Flush() != nil || rc.Flush() != nil {
				return
			}
			continue
		}
		if res.Index < last {
			// The registry was restored to another history: start over.
			last = res.Index
			have = map[string]uint64{}
			for _, in := range res.Instances {
				have[in.ID] = in.ModifyIndex
			}
			if send("snapshot", watchEvent{Index: res.Index, Instances: nonNil(res.Instances)}) != nil {
				return
			}
			continue
		}
		ev := watchEvent{Index: res.Index}
		now := make(map[string]uint64, len(res.Instances))
		for _, in := range res.Instances {
			now[in.ID] = in.ModifyIndex
			if have[in.ID] != in.ModifyIndex {
				ev.Upserted = append(ev.Upserted, in)
			}
		}
		for id := range have {
			if _, ok := now[id]; !ok {
				ev.Deleted = append(ev.Deleted, registry.Key{Service: q.Service, ID: id})
			}
		}
		have, last = now, res.Index
		if len(ev.Upserted) == 0 && len(ev.Deleted) == 0 {
			continue // a change outside this watch's filter
		}
		if send("change", ev) != nil {
			return
		}
	}
}
