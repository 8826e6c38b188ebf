package cli

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/rosterhq/roster/client"
)

// runWatch follows a service's SSE stream and prints each change. It
// reconnects with the last event it saw, so nothing is missed, until
// interrupted.
func runWatch(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet("watch", e)
	var c clientFlags
	var f filterFlags
	c.bind(fs, e)
	f.bind(fs)
	pos, err := parse(e, fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError{"wants one service NAME"}
	}
	a, err := newAgent(c.addr)
	if err != nil {
		return err
	}
	w := &watcher{e: e, json: c.json, known: map[string]bool{}}
	opts := f.options()
	backoff := 250 * time.Millisecond
	failures := 0
	for ctx.Err() == nil {
		err := a.Watch(ctx, pos[0], opts, w.last, w.print)
		if ctx.Err() != nil {
			return nil
		}
		var aerr *client.APIError
		if errors.As(err, &aerr) && aerr.Status < 500 {
			return apiError(aerr) // a bad request will not get better
		}
		failures++
		if failures == 1 || failures%10 == 0 {
			fmt.Fprintf(e.stderr, "roster watch: %s; reconnecting\n", oneLine(watchError(err).Error()))
		}
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
	return nil
}

// watchError is the reason a stream ended, as the reconnect line says it.
func watchError(err error) error {
	var aerr *client.APIError
	var derr *client.DecodeError
	var uerr *url.Error
	switch {
	case errors.Is(err, client.ErrStreamClosed):
		return errors.New("stream closed by agent")
	case errors.As(err, &aerr):
		return apiError(aerr)
	case errors.As(err, &derr):
		return fmt.Errorf("bad event from agent: %w", derr.Err)
	case errors.As(err, &uerr):
		return fmt.Errorf("cannot reach agent: %w", uerr.Err)
	case errors.Unwrap(err) != nil:
		return errors.Unwrap(err) // the read error, as Watch wraps it once
	}
	return err
}

type watcher struct {
	e     *env
	json  bool
	last  string
	known map[string]bool
}

func (w *watcher) print(ev *client.WatchEvent) error {
	out := w.e.stdout
	defer func() { w.last = ev.ID }()
	if w.json {
		fmt.Fprintf(out, "{\"event\":%q,\"data\":%s}\n", ev.Type, ev.Data)
		return nil
	}
	switch ev.Type {
	case "snapshot":
		w.known = map[string]bool{}
		fmt.Fprintf(out, "index %d: %d instances\n", ev.Index, len(ev.Instances))
		for _, in := range ev.Instances {
			w.known[in.ID] = true
			fmt.Fprintf(out, "  %s %s %s\n", in.ID, hostPort(in.Address, in.Port), in.Health)
		}
	case "change":
		fmt.Fprintf(out, "index %d:\n", ev.Index)
		for _, in := range ev.Upserted {
			mark := "+"
			if w.known[in.ID] {
				mark = "~"
			}
			w.known[in.ID] = true
			fmt.Fprintf(out, "%s %s %s %s\n", mark, in.ID, hostPort(in.Address, in.Port), in.Health)
		}
		for _, d := range ev.Deleted {
			delete(w.known, d.ID)
			fmt.Fprintf(out, "- %s\n", d.ID)
		}
	}
	return nil
}
