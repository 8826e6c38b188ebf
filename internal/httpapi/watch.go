package httpapi

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
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
	Index     uint64        `json:"index"`
	Instances []instanceOut `json:"instances,omitempty"`
	Upserted  []instanceOut `json:"upserted,omitempty"`
	Deleted   []wireKey     `json:"deleted,omitempty"`
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
	have := idSet(res.Instances)
	last := res.Index
	if blk.index != res.Index {
		if send("snapshot", watchEvent{Index: res.Index, Instances: toInstancesOut(res.Instances)}) != nil {
			return
		}
	}
	// Every watcher of the same query that was at the same index gets the
	// same change event, so the event is built once per (query, from, to)
	// and shared, with the instance set it leads to.
	qkey := cacheKey(&q)
	for {
		select {
		case <-a.reg.Draining():
			return // the agent is shutting down; the client reconnects
		default:
		}
		// Each wait lasts at most one keep-alive interval (Block adds a
		// little jitter, which spreads the keep-alives of many streams).
		var idx uint64
		err := a.reg.Block(ctx, registry.WatchService(q.Service), last, a.cfg.KeepAlive, func() uint64 {
			idx = a.reg.ServiceIndex(q.Service)
			return idx
		})
		if ctx.Err() != nil {
			return
		}
		if err != nil || idx == last {
			// Keep-alive tick, wait limit, or a transient error.
			if _, werr := fmt.Fprint(bw, ": keep-alive\n\n"); werr != nil || bw.Flush() != nil || rc.Flush() != nil {
				return
			}
			continue
		}
		if idx < last {
			// The registry was restored to another history: start over.
			res, err := a.reg.Instances(ctx, q, 0, 0)
			if err != nil {
				return
			}
			have, last = idSet(res.Instances), res.Index
			if send("snapshot", watchEvent{Index: res.Index, Instances: toInstancesOut(res.Instances)}) != nil {
				return
			}
			continue
		}
		from := have
		ans, hit, err := a.cache.Get("sse\x00"+qkey+"\x00"+strconv.FormatUint(last, 10), idx, func() ([]byte, uint64, any, error) {
			return a.changeFrame(context.WithoutCancel(ctx), q, from)
		})
		if err != nil {
			return
		}
		if hit {
			a.metrics.cacheHits.Inc()
		}
		frame := ans.Body
		have, last = ans.Aux.(map[string]uint64), ans.Index
		if len(frame) == 0 {
			continue // a change outside this watch's filter
		}
		if _, err := bw.Write(frame); err != nil || bw.Flush() != nil || rc.Flush() != nil {
			return
		}
	}
}

// changeFrame reads q's instances and encodes the SSE change event from
// the set have (ID to modify index) to them: empty when nothing within
// the filter changed. It returns the index read and the new set.
func (a *API) changeFrame(ctx context.Context, q registry.Query, have map[string]uint64) ([]byte, uint64, any, error) {
	res, err := a.reg.Instances(ctx, q, 0, 0)
	if err != nil {
		return nil, 0, nil, err
	}
	ev := watchEvent{Index: res.Index}
	now := idSet(res.Instances)
	for _, in := range res.Instances {
		if have[in.ID] != in.ModifyIndex {
			ev.Upserted = append(ev.Upserted, toInstanceOut(in))
		}
	}
	for id := range have {
		if _, ok := now[id]; !ok {
			ev.Deleted = append(ev.Deleted, wireKey{Service: q.Service, ID: id})
		}
	}
	if len(ev.Upserted) == 0 && len(ev.Deleted) == 0 {
		return nil, res.Index, now, nil
	}
	slices.SortFunc(ev.Deleted, func(x, y wireKey) int { return strings.Compare(x.ID, y.ID) })
	data, err := json.Marshal(ev)
	if err != nil {
		return nil, 0, nil, err
	}
	return fmt.Appendf(nil, "event: change\nid: %d\ndata: %s\n\n", ev.Index, data), res.Index, now, nil
}

func idSet(ins []*registry.Instance) map[string]uint64 {
	m := make(map[string]uint64, len(ins))
	for _, in := range ins {
		m[in.ID] = in.ModifyIndex
	}
	return m
}
