package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Duration is a time.Duration that travels as a Go duration string
// ("10s") in JSON, as the agent expects; it also reads a number of
// nanoseconds.
type Duration time.Duration

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var n int64
		if err := json.Unmarshal(b, &n); err != nil {
			return fmt.Errorf("duration: want a string such as \"10s\" or nanoseconds, got %s", b)
		}
		*d = Duration(n)
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %q: %w", s, err)
	}
	*d = Duration(v)
	return nil
}

// Health statuses of checks and instances.
const (
	Passing  = "passing"
	Warning  = "warning"
	Critical = "critical"
)

// Check is one health check of an instance (see docs/api.md for the
// types and their fields).
type Check struct {
	ID                     string   `json:"id,omitempty"`
	Name                   string   `json:"name,omitempty"`
	Type                   string   `json:"type"`
	Target                 string   `json:"target,omitempty"`
	Interval               Duration `json:"interval,omitempty"`
	Timeout                Duration `json:"timeout,omitempty"`
	TTL                    Duration `json:"ttl,omitempty"`
	FailuresBeforeCritical int      `json:"failures_before_critical,omitempty"`
	SuccessesBeforePassing int      `json:"successes_before_passing,omitempty"`
	DeregisterAfter        Duration `json:"deregister_after,omitempty"`
	// Status and Output are reported by the agent.
	Status string `json:"status,omitempty"`
	Output string `json:"output,omitempty"`
}

// Instance is one instance of a service, as registered and as read back.
type Instance struct {
	Service  string            `json:"service"`
	ID       string            `json:"id,omitempty"`
	Address  string            `json:"address"`
	Port     int               `json:"port"`
	Tags     []string          `json:"tags,omitempty"`
	Meta     map[string]string `json:"meta,omitempty"`
	Weight   int               `json:"weight,omitempty"`
	Priority int               `json:"priority,omitempty"`
	Zone     string            `json:"zone,omitempty"`
	Region   string            `json:"region,omitempty"`
	Canary   bool              `json:"canary,omitempty"`
	Revision string            `json:"revision,omitempty"`
	Repo     string            `json:"repo,omitempty"`

	// TTL, when set on a registration, gives the instance a TTL check that
	// Register keeps alive; DeregisterAfter removes it once that check has
	// been critical that long. The agent reports them under Checks.
	TTL             Duration `json:"ttl,omitempty"`
	DeregisterAfter Duration `json:"deregister_after,omitempty"`

	Checks []Check `json:"checks,omitempty"`

	// Health, CreateIndex and ModifyIndex are reported by the agent.
	Health      string `json:"health,omitempty"`
	CreateIndex uint64 `json:"create_index,omitempty"`
	ModifyIndex uint64 `json:"modify_index,omitempty"`
}

// Addr is the instance's host:port.
func (in *Instance) Addr() string { return net.JoinHostPort(in.Address, strconv.Itoa(in.Port)) }

// lease is the instance's TTL: the shorthand or the ttl check's.
func (in *Instance) lease() time.Duration {
	if in.TTL > 0 {
		return time.Duration(in.TTL)
	}
	for _, c := range in.Checks {
		if c.Type == "ttl" {
			return time.Duration(c.TTL)
		}
	}
	return 0
}

// Key identifies an instance.
type Key struct {
	Service string `json:"service"`
	ID      string `json:"id"`
}

func instancePath(service, id string) string {
	return "/v1/services/" + url.PathEscape(service) + "/instances/" + url.PathEscape(id)
}

// Put registers (or replaces) one instance, once; it returns the instance
// as stored. Most callers want Register, which also keeps its lease alive.
func (c *Client) Put(ctx context.Context, in *Instance) (*Instance, error) {
	if in.Service == "" || in.ID == "" {
		return nil, fmt.Errorf("client: put: service and id are required")
	}
	var out Instance
	if _, err := c.call(ctx, http.MethodPut, instancePath(in.Service, in.ID), nil, in, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Remove deregisters one instance. Removing an unknown instance returns
// an error matching ErrNotFound.
func (c *Client) Remove(ctx context.Context, service, id string) error {
	_, err := c.call(ctx, http.MethodDelete, instancePath(service, id), nil, nil, nil)
	return err
}

// Heartbeat renews one instance's TTL lease. An error matching ErrNotFound
// means the registry lost the instance: register it again.
func (c *Client) Heartbeat(ctx context.Context, service, id string) error {
	_, err := c.call(ctx, http.MethodPut, instancePath(service, id)+"/heartbeat", nil, nil, nil)
	return err
}

// HeartbeatsResult is the answer of a batch renewal.
type HeartbeatsResult struct {
	Renewed  int   `json:"renewed"`
	NotFound []Key `json:"not_found"`
	NoTTL    []Key `json:"no_ttl,omitempty"`
}

// MaxBatchHeartbeats is the most instances one batch renewal may carry.
const MaxBatchHeartbeats = 10000

// Heartbeats renews many leases in one request (at most
// MaxBatchHeartbeats).
func (c *Client) Heartbeats(ctx context.Context, keys []Key) (*HeartbeatsResult, error) {
	var out HeartbeatsResult
	body := struct {
		Instances []Key `json:"instances"`
	}{keys}
	if _, err := c.call(ctx, http.MethodPut, "/v1/heartbeats", nil, body, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// QueryOptions filters and blocks an instances query.
type QueryOptions struct {
	// Status is "passing", "warning" (passing and warning) or "any" (the
	// default).
	Status string
	// Tags: every one must match. Meta: every pair must match. Zone: only
	// that zone.
	Tags []string
	Meta map[string]string
	Zone string
	// MetaFilters are further metadata filters written "key=value", sent
	// as they are and in order after Meta, for tools that pass on what a
	// person typed: the agent applies them in order (the last value of a
	// key wins) and refuses one without '=' or with an empty key (an
	// *APIError naming the field meta). Programs use Meta.
	MetaFilters []string
	// Index blocks until the answer's index passes it (0: do not block),
	// for at most Wait (0: the agent's default, 5m).
	Index uint64
	Wait  time.Duration
}

func (o *QueryOptions) values() url.Values {
	q := url.Values{}
	if o.Status != "" {
		q.Set("status", o.Status)
	}
	for _, t := range o.Tags {
		q.Add("tag", t)
	}
	for k, v := range o.Meta {
		q.Add("meta", k+"="+v)
	}
	for _, kv := range o.MetaFilters {
		q.Add("meta", kv)
	}
	if o.Zone != "" {
		q.Set("zone", o.Zone)
	}
	if o.Index > 0 {
		q.Set("index", strconv.FormatUint(o.Index, 10))
		if o.Wait > 0 {
			q.Set("wait", strconv.FormatInt(o.Wait.Milliseconds(), 10)+"ms")
		}
	}
	return q
}

// blockingSlack is added to a blocking query's own wait (and the agent's
// jitter of up to 1/16) before the client gives up on the request.
const blockingSlack = 10 * time.Second

// Instances lists a service's instances and returns the index of the
// answer. With opts.Index set it is a blocking query: it returns when the
// index passes opts.Index or after opts.Wait.
func (c *Client) Instances(ctx context.Context, service string, opts QueryOptions) ([]Instance, uint64, error) {
	ans, hIdx, err := c.listInstances(ctx, service, opts)
	if err != nil {
		return nil, hIdx, err
	}
	return ans.Instances, max(ans.Index, hIdx), nil
}

// InstanceList is a service's instances as the agent answers them.
type InstanceList struct {
	// Service is the service's name as the agent normalized it.
	Service string `json:"service"`
	// Index is the registry index the answer reflects: 0 for a service
	// that never had an instance. (Instances returns the index to block
	// on instead, which is never below 1.)
	Index     uint64     `json:"index"`
	Instances []Instance `json:"instances"`
}

// ListInstances is Instances that returns the answer as the agent sent
// it, for tools that print it.
func (c *Client) ListInstances(ctx context.Context, service string, opts QueryOptions) (*InstanceList, error) {
	ans, _, err := c.listInstances(ctx, service, opts)
	return ans, err
}

func (c *Client) listInstances(ctx context.Context, service string, opts QueryOptions) (*InstanceList, uint64, error) {
	if opts.Index > 0 {
		wait := opts.Wait
		if wait <= 0 {
			wait = 5 * time.Minute
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, wait+wait/16+blockingSlack)
		defer cancel()
	}
	var out InstanceList
	hIdx, err := c.call(ctx, http.MethodGet, "/v1/services/"+url.PathEscape(service)+"/instances", opts.values(), nil, &out)
	if err != nil {
		return nil, hIdx, err
	}
	return &out, hIdx, nil
}

// ServiceSummary describes one service in the registry.
type ServiceSummary struct {
	Name        string `json:"name"`
	Instances   int    `json:"instances"`
	Passing     int    `json:"passing"`
	Warning     int    `json:"warning"`
	Critical    int    `json:"critical"`
	ModifyIndex uint64 `json:"modify_index"`
}

// Services lists every service with instances, blocking like Instances
// when index > 0 (wait 0: the agent's default).
func (c *Client) Services(ctx context.Context, index uint64, wait time.Duration) ([]ServiceSummary, uint64, error) {
	ans, hIdx, err := c.listServices(ctx, index, wait)
	if err != nil {
		return nil, hIdx, err
	}
	return ans.Services, max(ans.Index, hIdx), nil
}

// ServiceList is the list of services as the agent answers it.
type ServiceList struct {
	// Index is the registry index the answer reflects: 0 on a registry
	// that never had a write. (Services returns the index to block on
	// instead, which is never below 1.)
	Index    uint64           `json:"index"`
	Services []ServiceSummary `json:"services"`
}

// ListServices is Services that returns the answer as the agent sent it,
// for tools that print it.
func (c *Client) ListServices(ctx context.Context, index uint64, wait time.Duration) (*ServiceList, error) {
	ans, _, err := c.listServices(ctx, index, wait)
	return ans, err
}

func (c *Client) listServices(ctx context.Context, index uint64, wait time.Duration) (*ServiceList, uint64, error) {
	q := url.Values{}
	if index > 0 {
		if wait <= 0 {
			wait = 5 * time.Minute
		}
		q.Set("index", strconv.FormatUint(index, 10))
		q.Set("wait", strconv.FormatInt(wait.Milliseconds(), 10)+"ms")
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, wait+wait/16+blockingSlack)
		defer cancel()
	}
	var out ServiceList
	hIdx, err := c.call(ctx, http.MethodGet, "/v1/services", q, nil, &out)
	if err != nil {
		return nil, hIdx, err
	}
	return &out, hIdx, nil
}
