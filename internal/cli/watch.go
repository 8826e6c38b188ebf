package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

type watchEvent struct {
	Index     uint64     `json:"index"`
	Instances []instance `json:"instances"`
	Upserted  []instance `json:"upserted"`
	Deleted   []struct {
		ID string `json:"id"`
	} `json:"deleted"`
}

// runWatch follows a service's SSE stream and prints each change. It
// reconnects with the last index it saw, so nothing is missed, until
// interrupted.
func runWatch(e *env, args []string) error {
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
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	w := &watcher{e: e, json: c.json, known: map[string]bool{}}
	cl := newAgentClient(c.addr)
	path := cl.base + "/v1/services/" + url.PathEscape(pos[0]) + "/watch?" + f.query().Encode()
	backoff := 250 * time.Millisecond
	failures := 0
	for ctx.Err() == nil {
		err := w.stream(ctx, cl.http, path)
		if ctx.Err() != nil {
			return nil
		}
		var aerr *apiError
		if errors.As(err, &aerr) && aerr.Status < 500 {
			return err // a bad request will not get better
		}
		failures++
		if failures == 1 || failures%10 == 0 {
			fmt.Fprintf(e.stderr, "roster watch: %s; reconnecting\n", oneLine(err.Error()))
		}
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
		if err == nil {
			backoff, failures = 250*time.Millisecond, 0
		}
	}
	return nil
}

type watcher struct {
	e     *env
	json  bool
	last  string
	known map[string]bool
}

func (w *watcher) stream(ctx context.Context, hc *http.Client, path string) error {
	req, err := http.NewRequestWithContext(ctx, "GET", path, nil)
	if err != nil {
		return err
	}
	if w.last != "" {
		req.Header.Set("Last-Event-ID", w.last)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach agent: %w", unwrapURLError(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		e := &apiError{Status: resp.StatusCode}
		_ = json.NewDecoder(resp.Body).Decode(e)
		return e
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	var event, id, data string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if event != "" {
				if err := w.print(event, data); err != nil {
					return err
				}
				w.last = id
			}
			event, id, data = "", "", ""
		case strings.HasPrefix(line, "event: "):
			event = line[len("event: "):]
		case strings.HasPrefix(line, "id: "):
			id = line[len("id: "):]
		case strings.HasPrefix(line, "data: "):
			data = line[len("data: "):]
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return errors.New("stream closed by agent")
}

func (w *watcher) print(event, data string) error {
	var ev watchEvent
	if err := json.Unmarshal([]byte(data), &ev); err != nil {
		return fmt.Errorf("bad event from agent: %w", err)
	}
	out := w.e.stdout
	if w.json {
		fmt.Fprintf(out, "{\"event\":%q,\"data\":%s}\n", event, data)
		return nil
	}
	switch event {
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
