package testutil

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// RequestTimeout bounds one request made by Do and DoJSON.
const RequestTimeout = 30 * time.Second

// Client is the HTTP client of the helpers: enough idle connections per
// host for many concurrent writers, no overall timeout (each request is
// bounded by its context).
var Client = &http.Client{Transport: &http.Transport{
	MaxIdleConns:        256,
	MaxIdleConnsPerHost: 128,
	IdleConnTimeout:     30 * time.Second,
}}

// Response is an answer read in full.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// String describes the response for failure messages.
func (r *Response) String() string {
	return fmt.Sprintf("%d %s", r.Status, bytes.TrimSpace(r.Body))
}

// Request sends one request and reads the whole answer. body may be nil,
// []byte, string, an io.Reader (all sent as they are) or any other value
// (sent as JSON). It does not touch a testing.TB, so goroutines other
// than the test's may call it.
func Request(ctx context.Context, method, url string, body any) (*Response, error) {
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		r = bytes.NewReader(b)
	case string:
		r = strings.NewReader(b)
	case io.Reader:
		r = b
	default:
		j, err := json.Marshal(b)
		if err != nil {
			return nil, err
		}
		r = bytes.NewReader(j)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, r)
	if err != nil {
		return nil, err
	}
	if r != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := Client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: read body: %w", method, url, err)
	}
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: b}, nil
}

// Do sends one request (see Request for body), bounded by the test's
// context and RequestTimeout, and fails the test if it cannot be sent or
// answered. It returns the status, headers and body.
func Do(t testing.TB, method, url string, body any) (int, http.Header, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), RequestTimeout)
	defer cancel()
	resp, err := Request(ctx, method, url, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return resp.Status, resp.Header, resp.Body
}

// DoJSON is Do that also fails the test unless the status is want, and
// decodes the answer into out when out is not nil. It returns the headers.
func DoJSON(t testing.TB, method, url string, body any, want int, out any) http.Header {
	t.Helper()
	status, h, b := Do(t, method, url, body)
	if status != want {
		t.Fatalf("%s %s: status %d, want %d: %s", method, url, status, want, bytes.TrimSpace(b))
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: decode %q: %v", method, url, b, err)
		}
	}
	return h
}

// Index returns the X-Roster-Index header as a number (0 if absent).
func Index(t testing.TB, h http.Header) uint64 {
	t.Helper()
	s := h.Get("X-Roster-Index")
	if s == "" {
		return 0
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		t.Fatalf("X-Roster-Index %q: %v", s, err)
	}
	return n
}

// Metric reads one unlabelled sample from the agent's /metrics (Prometheus
// text format). It fails the test if the metric is absent.
func Metric(t testing.TB, baseURL, name string) float64 {
	t.Helper()
	status, _, b := Do(t, "GET", baseURL+"/metrics", nil)
	if status != http.StatusOK {
		t.Fatalf("GET /metrics: %d", status)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 && f[0] == name {
			v, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				t.Fatalf("metric %s: %v", name, err)
			}
			return v
		}
	}
	t.Fatalf("metric %s not found in /metrics", name)
	return 0
}
