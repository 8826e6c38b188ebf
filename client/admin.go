package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
)

// PutDocument registers an instance described by a JSON registration
// document, the body of the agent's registration API (docs/api.md), sent
// as it is: the agent alone validates it and reports every bad field at
// once (an *APIError with Fields). It is for tools that register what a
// person wrote, such as the roster command's register --file; programs
// should build an Instance and call Put or Register. An empty id lets the
// agent choose one. It returns the instance as stored.
func (c *Client) PutDocument(ctx context.Context, service, id string, doc json.RawMessage) (*Instance, error) {
	method, path := http.MethodPost, "/v1/services/"+url.PathEscape(service)+"/instances"
	if id != "" {
		method, path = http.MethodPut, instancePath(service, id)
	}
	resp, _, err := c.send(ctx, method, path, nil, bytes.NewReader(doc))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out Instance
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, &DecodeError{Op: "decode " + method + " " + path, Err: err}
	}
	return &out, nil
}

const snapshotPath = "/v1/registry/snapshot"

// SaveSnapshot streams a consistent snapshot of the whole registry into
// w, as it arrives, and returns the bytes written. A failure after some
// bytes were written means w holds an incomplete snapshot: write to a
// temporary file and rename it only on success. The agent answers
// ErrUnavailable while it is not ready. Cancel ctx to stop the transfer.
func (c *Client) SaveSnapshot(ctx context.Context, w io.Writer) (int64, error) {
	resp, _, err := c.send(ctx, http.MethodGet, snapshotPath, nil, nil)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	n, err := io.Copy(w, resp.Body)
	if err != nil {
		return n, fmt.Errorf("save snapshot: %w", err)
	}
	return n, nil
}

// RestoreSnapshot replaces the whole registry with the snapshot read from
// r (as SaveSnapshot wrote it). The agent checks the whole upload before
// it replaces anything: a bad snapshot is an *APIError and changes
// nothing. It returns the registry's index after the restore. Cancel ctx
// to stop the upload.
func (c *Client) RestoreSnapshot(ctx context.Context, r io.Reader) (uint64, error) {
	resp, _, err := c.send(ctx, http.MethodPut, snapshotPath, nil, r)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var out struct {
		Index uint64 `json:"index"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return 0, &DecodeError{Op: "decode PUT " + snapshotPath, Err: err}
	}
	return out.Index, nil
}

// ClusterMember is one server of the agent's cluster, as GET
// /v1/cluster/members reports it.
type ClusterMember struct {
	ID       string `json:"id"`
	Address  string `json:"address"` // raft address
	Voter    bool   `json:"voter"`
	HTTPAddr string `json:"http_addr,omitempty"`
	// Role is leader, follower or candidate, or unreachable when the
	// server did not answer.
	Role string `json:"role"`
	// Leader is the ID of the leader this server knows ("" when none).
	Leader string `json:"leader,omitempty"`
	// LastContactMS is how long ago this server heard from the leader: 0
	// on the leader, -1 when it never has.
	LastContactMS int64  `json:"last_contact_ms"`
	Term          uint64 `json:"term,omitempty"`
	LastIndex     uint64 `json:"last_index,omitempty"`
	CommitIndex   uint64 `json:"commit_index,omitempty"`
	AppliedIndex  uint64 `json:"applied_index,omitempty"`
	Ready         bool   `json:"ready"`
	// Healthy: reachable, caught up since start, and a leader or in touch
	// with one within the last two seconds.
	Healthy bool   `json:"healthy"`
	Error   string `json:"error,omitempty"`
	// UnreachableMS is how long the leader has been unable to reach this
	// server (dead-server cleanup removes it at -dead-server-after);
	// absent otherwise.
	UnreachableMS int64 `json:"unreachable_ms,omitempty"`
}

// ClusterMembers is the answer of GET /v1/cluster/members.
type ClusterMembers struct {
	// Leader is the leader's ID as the agent knows it ("" when none).
	Leader string `json:"leader"`
	// Self is the ID of the agent that answered.
	Self    string          `json:"self"`
	Members []ClusterMember `json:"members"`
}

// ClusterMembers lists the servers of the agent's cluster with their role,
// health and last contact. An agent that is not a cluster server answers
// an error matching ErrNotFound.
func (c *Client) ClusterMembers(ctx context.Context) (*ClusterMembers, error) {
	var out ClusterMembers
	if _, err := c.call(ctx, http.MethodGet, "/v1/cluster/members", nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RemovePeer removes a server, named by its ID or raft address, from the
// cluster's configuration (through the leader), and returns the ID of the
// server removed. A name no server has answers an error matching
// ErrNotFound.
func (c *Client) RemovePeer(ctx context.Context, peer string) (string, error) {
	var out struct {
		Removed string `json:"removed"`
	}
	if _, err := c.call(ctx, http.MethodDelete, "/v1/cluster/peers/"+url.PathEscape(peer), nil, nil, &out); err != nil {
		return "", err
	}
	return out.Removed, nil
}
