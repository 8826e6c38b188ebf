package client

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// WatchEvent is one event of a service's watch stream. The first event of
// a stream is a "snapshot": Instances is the whole filtered set. Every
// later one is a "change": Upserted holds each instance added or updated,
// Deleted each one removed, so applying events in order gives the set the
// registry holds at Index.
type WatchEvent struct {
	// Type is "snapshot" or "change".
	Type string
	// ID resumes the stream after this event (Watch's lastEventID).
	ID string
	// Index is the registry index of the event.
	Index     uint64
	Instances []Instance
	Upserted  []Instance
	Deleted   []Key
	// Data is the event's JSON as the agent sent it.
	Data json.RawMessage
}

// ErrStreamClosed: the agent ended a watch stream (it shuts down, or a
// proxy cut the connection); watch again with the last event's ID.
var ErrStreamClosed = errors.New("roster: stream closed by agent")

// Watch follows a service's instances as they change, over one
// server-sent-events stream (GET /v1/services/{service}/watch) filtered
// by opts (Status, Tags, Meta, Zone; Index resumes like lastEventID). With
// lastEventID, the ID of the last event handled, the agent resumes with
// the changes after it while it still can, and otherwise starts over with
// a snapshot: never a gap.
//
// fn is called for each event in order, on the caller's goroutine. Watch
// returns fn's error when fn fails, ErrStreamClosed when the agent ends
// the stream, the *url.Error of net/http when the agent cannot be
// reached, an *APIError (wrapped) when it refuses the watch, a
// *DecodeError for an event it cannot decode, and the read error wrapped
// once ("watch SERVICE: ...") when the stream breaks; after ctx ends,
// ctx's error. It does not
// reconnect: that is the caller's loop, with backoff.
func (c *Client) Watch(ctx context.Context, service string, opts QueryOptions, lastEventID string, fn func(*WatchEvent) error) error {
	path := "/v1/services/" + url.PathEscape(service) + "/watch"
	u := *c.base
	u.Path += path
	u.RawQuery = opts.values().Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		apiErr := &APIError{Status: resp.StatusCode}
		_ = json.NewDecoder(resp.Body).Decode(apiErr)
		return fmt.Errorf("GET %s: %w", path, apiErr)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	var event, id, data string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if event != "" {
				ev := WatchEvent{Type: event, ID: id, Data: json.RawMessage(data)}
				if err := ev.decode(); err != nil {
					return &DecodeError{Op: "watch " + service + ": bad " + event + " event", Err: err}
				}
				if err := fn(&ev); err != nil {
					return err
				}
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
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("watch %s: %w", service, err)
	}
	return ErrStreamClosed
}

// watchEvent is the data of an event on the wire.
type watchEvent struct {
	Index     uint64     `json:"index"`
	Instances []Instance `json:"instances"`
	Upserted  []Instance `json:"upserted"`
	Deleted   []Key      `json:"deleted"`
}

func (ev *WatchEvent) decode() error {
	var d watchEvent
	if err := json.Unmarshal(ev.Data, &d); err != nil {
		return err
	}
	ev.Index, ev.Instances, ev.Upserted, ev.Deleted = d.Index, d.Instances, d.Upserted, d.Deleted
	return nil
}
