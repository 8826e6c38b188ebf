package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// rosterClient speaks roster's native HTTP API over keep-alive connections.
type rosterClient struct {
	base string
	hc   *http.Client
}

// newRosterClient returns a client that keeps up to conns idle connections.
func newRosterClient(addr string, conns int) *rosterClient {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        conns + 16,
		MaxIdleConnsPerHost: conns + 16,
		IdleConnTimeout:     2 * time.Minute,
		DisableCompression:  true,
	}
	return &rosterClient{base: "http://" + addr, hc: &http.Client{Transport: tr, Timeout: 2 * time.Minute}}
}

func (c *rosterClient) close() { c.hc.CloseIdleConnections() }

// do sends one request and returns the status, the X-Roster-Index header
// and, with keep, the body (otherwise it is drained and dropped).
func (c *rosterClient) do(ctx context.Context, method, path string, body []byte, keep bool) (int, uint64, []byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return 0, 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, 0, nil, err
	}
	defer resp.Body.Close()
	var out []byte
	if keep {
		out, err = io.ReadAll(resp.Body)
	} else {
		_, err = io.Copy(io.Discard, resp.Body)
	}
	idx, _ := strconv.ParseUint(resp.Header.Get("X-Roster-Index"), 10, 64)
	return resp.StatusCode, idx, out, err
}

// expect turns an unexpected status into an error.
func expect(status int, body []byte, err error, ok ...int) error {
	if err != nil {
		return err
	}
	for _, s := range ok {
		if status == s {
			return nil
		}
	}
	return fmt.Errorf("HTTP %d: %s", status, bytes.TrimSpace(body))
}

// register upserts one instance.
func (c *rosterClient) register(ctx context.Context, service, id string, body []byte) error {
	st, _, b, err := c.do(ctx, http.MethodPut, "/v1/services/"+service+"/instances/"+id, body, false)
	return expect(st, b, err, http.StatusOK, http.StatusCreated)
}

// countInstances lists a service's passing instances.
func (c *rosterClient) countInstances(ctx context.Context, service string) (int, uint64, error) {
	st, idx, b, err := c.do(ctx, http.MethodGet, "/v1/services/"+service+"/instances?status=passing", nil, true)
	if err := expect(st, b, err, http.StatusOK); err != nil {
		return 0, 0, err
	}
	var ans struct {
		Instances []json.RawMessage `json:"instances"`
	}
	if err := json.Unmarshal(b, &ans); err != nil {
		return 0, 0, err
	}
	return len(ans.Instances), idx, nil
}

// totalInstances sums the instance counts of every service.
func (c *rosterClient) totalInstances(ctx context.Context) (int, error) {
	st, _, b, err := c.do(ctx, http.MethodGet, "/v1/services", nil, true)
	if err := expect(st, b, err, http.StatusOK); err != nil {
		return 0, err
	}
	var ans struct {
		Services []struct {
			Instances int `json:"instances"`
		} `json:"services"`
	}
	if err := json.Unmarshal(b, &ans); err != nil {
		return 0, err
	}
	n := 0
	for _, s := range ans.Services {
		n += s.Instances
	}
	return n, nil
}

// instanceJSON is the registration body used everywhere (and etcd's value):
// a typical instance with tags, metadata and a zone, about 200 bytes.
func instanceJSON(k int, ttl string) []byte {
	b := fmt.Appendf(nil, `{"address":"10.%d.%d.%d","port":%d,"tags":["v1","http","primary"],"meta":{"version":"1.4.2","team":"payments"},"zone":"zone-%c"`,
		(k>>16)&0xff, (k>>8)&0xff, k&0xff, 8000+k%1000, 'a'+rune(k%3))
	if ttl != "" {
		b = fmt.Appendf(b, `,"ttl":%q`, ttl)
	}
	return append(b, '}')
}

// metricsSample is one scrape of /metrics: series name (with labels) to value.
type metricsSample map[string]float64

func (c *rosterClient) metrics(ctx context.Context) (metricsSample, error) {
	st, _, b, err := c.do(ctx, http.MethodGet, "/metrics", nil, true)
	if err := expect(st, b, err, http.StatusOK); err != nil {
		return nil, err
	}
	m := metricsSample{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		m[line[:i]] = v
	}
	return m, sc.Err()
}

// histQuantile estimates quantile q of the observations a histogram got
// between two scrapes, as the upper bound of the bucket that holds it.
func histQuantile(before, after metricsSample, name string, q float64) float64 {
	type bucket struct{ le, n float64 }
	var bs []bucket
	prefix := name + `_bucket{le="`
	for k, v := range after {
		rest, ok := strings.CutPrefix(k, prefix)
		if !ok {
			continue
		}
		le, err := strconv.ParseFloat(strings.TrimSuffix(rest, `"}`), 64)
		if err != nil {
			continue
		}
		bs = append(bs, bucket{le, v - before[k]})
	}
	sort.Slice(bs, func(i, j int) bool { return bs[i].le < bs[j].le })
	if len(bs) == 0 || bs[len(bs)-1].n == 0 {
		return math.NaN()
	}
	want := q * bs[len(bs)-1].n
	for _, b := range bs {
		if b.n >= want {
			return b.le
		}
	}
	return math.Inf(1)
}

// delta is after-before of one series.
func delta(before, after metricsSample, name string) float64 { return after[name] - before[name] }
