package client_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rosterhq/roster/client"
	"github.com/rosterhq/roster/client/internal/testagent"
)

// adminCalls are the calls of admin.go and the answer listings, each
// made once against c; each returns only its error.
var adminCalls = []struct {
	name string
	call func(ctx context.Context, c *client.Client) error
}{
	{"PutDocument", func(ctx context.Context, c *client.Client) error {
		_, err := c.PutDocument(ctx, "web", "web-1", json.RawMessage(`{"address":"10.0.0.1","port":80}`))
		return err
	}},
	{"PutDocument without id", func(ctx context.Context, c *client.Client) error {
		_, err := c.PutDocument(ctx, "web", "", json.RawMessage(`{"address":"10.0.0.1","port":80}`))
		return err
	}},
	{"SaveSnapshot", func(ctx context.Context, c *client.Client) error {
		_, err := c.SaveSnapshot(ctx, io.Discard)
		return err
	}},
	{"RestoreSnapshot", func(ctx context.Context, c *client.Client) error {
		_, err := c.RestoreSnapshot(ctx, strings.NewReader("{}\n"))
		return err
	}},
	{"ClusterMembers", func(ctx context.Context, c *client.Client) error {
		_, err := c.ClusterMembers(ctx)
		return err
	}},
	{"RemovePeer", func(ctx context.Context, c *client.Client) error {
		_, err := c.RemovePeer(ctx, "s1")
		return err
	}},
	{"ListInstances", func(ctx context.Context, c *client.Client) error {
		_, err := c.ListInstances(ctx, "web", client.QueryOptions{})
		return err
	}},
	{"ListServices", func(ctx context.Context, c *client.Client) error {
		_, err := c.ListServices(ctx, 0, 0)
		return err
	}},
	{"Watch", func(ctx context.Context, c *client.Client) error {
		return c.Watch(ctx, "web", client.QueryOptions{}, "", func(*client.WatchEvent) error { return nil })
	}},
}

func scripted(t *testing.T, status int, contentType, body string) *client.Client {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", contentType)
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	c, err := client.New(client.Config{Address: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// TestAdminErrors: every call maps 404, 409 and 503 to the SDK's errors
// and keeps the agent's message; an answer that is not JSON is a
// *DecodeError.
func TestAdminErrors(t *testing.T) {
	statuses := []struct {
		status int
		want   error
	}{
		{http.StatusNotFound, client.ErrNotFound},
		{http.StatusConflict, client.ErrConflict},
		{http.StatusServiceUnavailable, client.ErrUnavailable},
	}
	for _, call := range adminCalls {
		for _, st := range statuses {
			t.Run(call.name+"/"+http.StatusText(st.status), func(t *testing.T) {
				c := scripted(t, st.status, "application/json", `{"error":"the agent's reason"}`)
				err := call.call(ctxT(t), c)
				var aerr *client.APIError
				if !errors.Is(err, st.want) || !errors.As(err, &aerr) || aerr.Status != st.status || aerr.Message != "the agent's reason" {
					t.Fatalf("err = %v, want an *APIError %d matching %v", err, st.status, st.want)
				}
			})
		}
		if call.name == "SaveSnapshot" {
			continue // streams whatever it gets
		}
		t.Run(call.name+"/not JSON", func(t *testing.T) {
			typ := "text/html"
			if call.name == "Watch" {
				typ = "text/event-stream"
			}
			c := scripted(t, http.StatusOK, typ, "event: snapshot\nid: 1\ndata: <html>\n\n")
			err := call.call(ctxT(t), c)
			var derr *client.DecodeError
			if !errors.As(err, &derr) || derr.Err == nil {
				t.Fatalf("err = %v, want a *DecodeError", err)
			}
		})
	}
}

func TestAdminFieldErrors(t *testing.T) {
	c := scripted(t, http.StatusBadRequest, "application/json", `{"error":"invalid","fields":[{"field":"port","message":"must be 1-65535"}]}`)
	_, err := c.PutDocument(ctxT(t), "web", "", json.RawMessage(`{"port":0}`))
	var aerr *client.APIError
	if !errors.As(err, &aerr) || aerr.Status != 400 || len(aerr.Fields) != 1 || aerr.Fields[0].Field != "port" {
		t.Fatalf("err = %v, want a 400 *APIError naming port", err)
	}
}

// TestListsKeepBodyIndex: the List calls return the body's index (0 on a
// registry that never had a write) where Instances and Services return
// the header's, which is never below 1.
func TestListsKeepBodyIndex(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Roster-Index", "1")
		if r.URL.Path == "/v1/services" {
			_, _ = io.WriteString(w, `{"index":0,"services":[]}`)
			return
		}
		_, _ = io.WriteString(w, `{"service":"web","index":0,"instances":[]}`)
	}))
	defer srv.Close()
	c, err := client.New(client.Config{Address: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t)
	if l, err := c.ListServices(ctx, 0, 0); err != nil || l.Index != 0 || l.Services == nil {
		t.Errorf("ListServices = %+v, %v; want index 0 and an empty list", l, err)
	}
	if _, idx, err := c.Services(ctx, 0, 0); err != nil || idx != 1 {
		t.Errorf("Services index %d, %v; want 1", idx, err)
	}
	if l, err := c.ListInstances(ctx, "WEB", client.QueryOptions{}); err != nil || l.Index != 0 || l.Service != "web" || l.Instances == nil {
		t.Errorf("ListInstances = %+v, %v; want web, index 0 and an empty list", l, err)
	}
	if _, idx, err := c.Instances(ctx, "web", client.QueryOptions{}); err != nil || idx != 1 {
		t.Errorf("Instances index %d, %v; want 1", idx, err)
	}
}

func TestClusterMembersDecodes(t *testing.T) {
	c := scripted(t, http.StatusOK, "application/json", `{"leader":"s1","self":"s2","members":[{"id":"s1","address":"127.0.0.1:7001","voter":true,"role":"leader","last_contact_ms":0,"applied_index":9,"ready":true,"healthy":true},{"id":"s2","address":"127.0.0.1:7002","role":"unreachable","last_contact_ms":-1,"error":"refused"}]}`)
	ms, err := c.ClusterMembers(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if ms.Leader != "s1" || ms.Self != "s2" || len(ms.Members) != 2 || ms.Members[0].AppliedIndex != 9 || !ms.Members[0].Healthy ||
		ms.Members[1].LastContactMS != -1 || ms.Members[1].Error != "refused" {
		t.Fatalf("members %+v", ms)
	}
	c = scripted(t, http.StatusOK, "application/json", `{"removed":"s3"}`)
	if id, err := c.RemovePeer(ctxT(t), "127.0.0.1:7003"); err != nil || id != "s3" {
		t.Fatalf("RemovePeer = %q, %v; want s3", id, err)
	}
}

// TestAdminAgainstAgent runs the calls against a real agent: a document
// registration, the answers as sent, a snapshot saved from one agent and
// restored into another, a watch resumed after its last event, and the
// 404 of the cluster endpoints on an agent that is not a cluster server.
func TestAdminAgainstAgent(t *testing.T) {
	t.Parallel()
	a, b := testagent.Start(t), testagent.Start(t)
	ca, cb := newClient(t, a), newClient(t, b)
	ctx := ctxT(t)

	if svcs, err := ca.ListServices(ctx, 0, 0); err != nil || svcs.Services == nil || len(svcs.Services) != 0 {
		t.Fatalf("ListServices on an empty agent = %+v, %v; want no services", svcs, err)
	}

	in, err := ca.PutDocument(ctx, "web", "web-1", json.RawMessage(`{"address":"10.0.0.1","port":80,"meta":{"v":"1"},"tags":["a"]}`))
	if err != nil || in.ID != "web-1" || in.Port != 80 || in.Health != client.Passing || in.ModifyIndex == 0 {
		t.Fatalf("PutDocument = %+v, %v", in, err)
	}
	gen, err := ca.PutDocument(ctx, "web", "", json.RawMessage(`{"address":"10.0.0.2","port":81}`))
	if err != nil || gen.ID == "" {
		t.Fatalf("PutDocument without id = %+v, %v; want a generated ID", gen, err)
	}
	var aerr *client.APIError
	if _, err := ca.PutDocument(ctx, "web", "", json.RawMessage(`{"address":"not an address","port":70000}`)); !errors.As(err, &aerr) || aerr.Status != 400 || len(aerr.Fields) < 2 {
		t.Fatalf("a bad document: %v; want a 400 naming every bad field", err)
	}

	list, err := ca.ListInstances(ctx, "WEB", client.QueryOptions{Tags: []string{"a"}, MetaFilters: []string{"v=0", "v=1"}})
	if err != nil || list.Service != "web" || list.Index == 0 || len(list.Instances) != 1 || list.Instances[0].ID != "web-1" {
		t.Fatalf("ListInstances = %+v, %v; want web-1 (the last v= wins)", list, err)
	}
	if _, err := ca.ListInstances(ctx, "web", client.QueryOptions{MetaFilters: []string{"v"}}); !errors.As(err, &aerr) || aerr.Status != 400 || len(aerr.Fields) == 0 || aerr.Fields[0].Field != "meta" {
		t.Fatalf("a filter without '=': %v; want a 400 naming meta", err)
	}

	var snap bytes.Buffer
	n, err := ca.SaveSnapshot(ctx, &snap)
	if err != nil || n == 0 || n != int64(snap.Len()) {
		t.Fatalf("SaveSnapshot = %d, %v (%d bytes buffered)", n, err, snap.Len())
	}
	if _, err := cb.RestoreSnapshot(ctx, strings.NewReader("not a snapshot\n")); !errors.As(err, &aerr) || aerr.Status != 400 {
		t.Fatalf("restoring garbage: %v; want a 400", err)
	}
	idx, err := cb.RestoreSnapshot(ctx, bytes.NewReader(snap.Bytes()))
	if err != nil || idx == 0 {
		t.Fatalf("RestoreSnapshot = %d, %v", idx, err)
	}
	restored, _, err := cb.Instances(ctx, "web", client.QueryOptions{})
	if err != nil || len(restored) != 2 {
		t.Fatalf("after restore: %d instances, %v; want 2", len(restored), err)
	}

	if _, err := ca.ClusterMembers(ctx); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("ClusterMembers on a single agent: %v; want ErrNotFound", err)
	}
	if _, err := ca.RemovePeer(ctx, "s1"); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("RemovePeer on a single agent: %v; want ErrNotFound", err)
	}

	// Watch: a snapshot, then the change of a write; resumed after the
	// last event, the next change and nothing before it.
	errStop := errors.New("stop")
	var events []*client.WatchEvent
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	err = ca.Watch(wctx, "web", client.QueryOptions{}, "", func(ev *client.WatchEvent) error {
		events = append(events, ev)
		if ev.Type == "snapshot" {
			return ca.Remove(ctx, "web", gen.ID)
		}
		return errStop
	})
	if !errors.Is(err, errStop) || len(events) != 2 || events[0].Type != "snapshot" || len(events[0].Instances) != 2 ||
		events[1].Type != "change" || len(events[1].Deleted) != 1 || events[1].Deleted[0].ID != gen.ID {
		t.Fatalf("Watch = %v with events %+v", err, events)
	}
	last := events[1].ID
	if _, err := ca.PutDocument(ctx, "web", "web-3", json.RawMessage(`{"address":"10.0.0.3","port":83}`)); err != nil {
		t.Fatal(err)
	}
	var resumed *client.WatchEvent
	err = ca.Watch(wctx, "web", client.QueryOptions{}, last, func(ev *client.WatchEvent) error {
		resumed = ev
		return errStop
	})
	// The agent resumes with the change, or starts over with a snapshot
	// of the whole set: never a gap.
	ok := resumed != nil && (resumed.Type == "change" && len(resumed.Upserted) == 1 && resumed.Upserted[0].ID == "web-3" ||
		resumed.Type == "snapshot" && len(resumed.Instances) == 2 && (resumed.Instances[0].ID == "web-3" || resumed.Instances[1].ID == "web-3"))
	if !errors.Is(err, errStop) || !ok {
		t.Fatalf("resumed Watch = %v with %+v; want the change that added web-3 or a snapshot holding it", err, resumed)
	}
	cancel()
	if err := ca.Watch(wctx, "web", client.QueryOptions{}, "", func(*client.WatchEvent) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Fatalf("Watch after cancel: %v; want context.Canceled", err)
	}
}

// TestWatchStreamClosed: an agent that ends the stream is ErrStreamClosed.
func TestWatchStreamClosed(t *testing.T) {
	c := scripted(t, http.StatusOK, "text/event-stream", "event: snapshot\nid: 1\ndata: {\"index\":1,\"instances\":[]}\n\n")
	var n int
	err := c.Watch(ctxT(t), "web", client.QueryOptions{}, "", func(*client.WatchEvent) error { n++; return nil })
	if !errors.Is(err, client.ErrStreamClosed) || n != 1 {
		t.Fatalf("Watch = %v after %d events; want ErrStreamClosed after 1", err, n)
	}
}
