package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DefaultAddress is the agent's default HTTP address.
const DefaultAddress = "127.0.0.1:8500"

// AddressEnv names the environment variable that gives the agent's address
// when Config.Address is empty (the CLI reads the same one).
const AddressEnv = "ROSTER_HTTP_ADDR"

// IndexHeader carries the registry index of every answer.
const IndexHeader = "X-Roster-Index"

// Config configures a Client.
type Config struct {
	// Address is the agent's HTTP API: "host:port" or a base URL
	// ("http://host:port"). Empty means $ROSTER_HTTP_ADDR, else
	// DefaultAddress.
	Address string
	// HTTPClient talks to the agent. Nil means a client with its own
	// transport sized for many concurrent blocking queries. Its Timeout
	// must be zero or longer than blocking waits.
	HTTPClient *http.Client
	// Logger receives the client's few log lines (lost leases, stale
	// caches); nil discards them.
	Logger *slog.Logger
}

// Client talks to a roster agent's native HTTP API. It is safe for
// concurrent use. Close stops every Registration made through it.
type Client struct {
	base *url.URL
	hc   *http.Client
	log  *slog.Logger

	mu    sync.Mutex
	hb    *heartbeater // started with the first registration
	close bool
}

// New returns a client for the agent at cfg.Address. It does not contact
// the agent.
func New(cfg Config) (*Client, error) {
	addr := cfg.Address
	if addr == "" {
		addr = os.Getenv(AddressEnv)
	}
	if addr == "" {
		addr = DefaultAddress
	}
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	u, err := url.Parse(addr)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("client: address %q: want host:port or http(s)://host:port", cfg.Address)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Transport: newAgentTransport()}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Client{base: u, hc: hc, log: log.With("component", "roster-client")}, nil
}

// newAgentTransport keeps enough idle connections to the agent for a
// resolver's blocking queries, which each hold one.
func newAgentTransport() *http.Transport {
	return &http.Transport{
		Proxy:               nil, // the agent is local; never through a proxy
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        256,
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     90 * time.Second,
	}
}

// Close stops the heartbeats of every Registration made through the
// client, without deregistering them (call Registration.Deregister for
// that), and closes idle connections.
func (c *Client) Close() error {
	c.mu.Lock()
	hb := c.hb
	c.close = true
	c.mu.Unlock()
	if hb != nil {
		hb.stop()
	}
	c.hc.CloseIdleConnections()
	return nil
}

// APIError is an error answer of the agent.
type APIError struct {
	// Status is the HTTP status code.
	Status int `json:"-"`
	// Message is the agent's message.
	Message string `json:"error"`
	// Fields lists every offending field of a rejected write.
	Fields []FieldError `json:"fields,omitempty"`
}

// FieldError names one offending field of a rejected write.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// Error implements error.
func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "roster: %d %s", e.Status, e.Message)
	for _, f := range e.Fields {
		fmt.Fprintf(&b, "; %s: %s", f.Field, f.Message)
	}
	return b.String()
}

// Is lets errors.Is match the sentinel errors by status.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return e.Status == http.StatusNotFound
	case ErrConflict:
		return e.Status == http.StatusConflict
	case ErrUnavailable:
		return e.Status == http.StatusServiceUnavailable
	}
	return false
}

// Errors to test for with errors.Is.
var (
	// ErrNotFound: the instance is unknown to the registry (a heartbeat's
	// 404 means register again).
	ErrNotFound = errors.New("roster: not found")
	// ErrConflict: a heartbeat for an instance without a TTL.
	ErrConflict = errors.New("roster: conflict")
	// ErrUnavailable: the agent is restoring or shutting down.
	ErrUnavailable = errors.New("roster: agent unavailable")
	// ErrNoInstances: a lookup found no healthy instance to use.
	ErrNoInstances = errors.New("roster: no healthy instances")
	// ErrClosed: the resolver or client was closed.
	ErrClosed = errors.New("roster: closed")
)

// DecodeError is an answer of the agent, or an event of a watch stream,
// that the client cannot decode: most often another HTTP server answered
// at the agent's address, or a proxy replaced the answer.
type DecodeError struct {
	// Op names what was decoded, such as "decode GET /v1/services".
	Op string
	// Err is the decoder's error.
	Err error
}

// Error implements error.
func (e *DecodeError) Error() string { return e.Op + ": " + e.Err.Error() }

// Unwrap returns Err.
func (e *DecodeError) Unwrap() error { return e.Err }

// call does one request to the agent. body, when not nil, is sent as
// JSON; out, when not nil, receives the JSON answer. It returns the
// answer's index (0 when the agent sent none).
func (c *Client) call(ctx context.Context, method, path string, query url.Values, body, out any) (uint64, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, fmt.Errorf("encode %s %s: %w", method, path, err)
		}
		rd = bytes.NewReader(b)
	}
	resp, idx, err := c.send(ctx, method, path, query, rd)
	if err != nil {
		return idx, err
	}
	defer resp.Body.Close()
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			return idx, &DecodeError{Op: "decode " + method + " " + path, Err: err}
		}
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	return idx, nil
}

// send does one request to the agent with body (nil for none) sent as
// JSON. It returns the answer of a success, whose body the caller must
// close, and the answer's index (0 when the agent sent none). A failure
// to reach the agent is the *url.Error of net/http; an error answer is an
// *APIError, wrapped with the method and path.
func (c *Client) send(ctx context.Context, method, path string, query url.Values, body io.Reader) (*http.Response, uint64, error) {
	u := *c.base
	u.Path += path
	u.RawQuery = query.Encode()
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, 0, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, 0, err
	}
	idx, _ := strconv.ParseUint(resp.Header.Get(IndexHeader), 10, 64)
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		apiErr := &APIError{Status: resp.StatusCode}
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if json.Unmarshal(raw, apiErr) != nil || apiErr.Message == "" {
			apiErr.Message = strings.TrimSpace(string(raw))
			if apiErr.Message == "" {
				apiErr.Message = http.StatusText(resp.StatusCode)
			}
		}
		return nil, idx, fmt.Errorf("%s %s: %w", method, path, apiErr)
	}
	return resp, idx, nil
}
