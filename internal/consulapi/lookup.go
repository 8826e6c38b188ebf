package consulapi

import (
	"context"
	"errors"
	"strings"
	"sync"

	"github.com/rosterhq/roster/internal/registry"
)

// maxMemo bounds the ID memo; past it the memo starts over.
const maxMemo = 1 << 18

// idMemo remembers which service an instance ID, and which instance a
// Consul check ID, belongs to. Consul's agent endpoints name instances
// and checks by ID alone; the registry keys instances by service and ID.
// The memo is a hint, not state: every use is checked against the
// registry, and a miss falls back to a search of the registry.
type idMemo struct {
	mu     sync.RWMutex
	svc    map[string]string       // instance ID → service
	checks map[string]registry.Key // Consul check ID → instance
}

func newIDMemo() *idMemo {
	return &idMemo{svc: map[string]string{}, checks: map[string]registry.Key{}}
}

func (m *idMemo) service(id string) (string, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	s, ok := m.svc[id]
	return s, ok
}

func (m *idMemo) check(id string) (registry.Key, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	k, ok := m.checks[id]
	return k, ok
}

// remember notes in's ID and its checks' Consul IDs.
func (m *idMemo) remember(in *registry.Instance) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.svc)+len(m.checks) > maxMemo {
		m.svc, m.checks = map[string]string{}, map[string]registry.Key{}
	}
	m.svc[in.ID] = in.Service
	for i := range in.Checks {
		m.checks[consulCheckID(in, &in.Checks[i])] = in.Key()
	}
}

// rememberChosen notes the check IDs a Consul client chose without a
// ':', which the API shows qualified ("service:<id>:<check id>") but
// clients also send as they chose them.
func (m *idMemo) rememberChosen(in *registry.Instance) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, c := range in.Checks {
		if !strings.Contains(c.ID, ":") {
			m.checks[c.ID] = in.Key()
		}
	}
}

func (m *idMemo) forget(id string) {
	m.mu.Lock()
	delete(m.svc, id)
	m.mu.Unlock()
}

func (m *idMemo) forgetCheck(id string) {
	m.mu.Lock()
	delete(m.checks, id)
	m.mu.Unlock()
}

// findInstance returns the instance with Consul service ID id. When
// several services hold an instance of that ID (possible through the
// native API only), the first service by name wins.
func (a *API) findInstance(ctx context.Context, id string) (*registry.Instance, error) {
	if svc, ok := a.ids.service(id); ok {
		in, err := a.reg.Get(registry.Key{Service: svc, ID: id})
		if err == nil {
			return in, nil
		}
		if !errors.Is(err, registry.ErrNotFound) {
			return nil, err
		}
		a.ids.forget(id)
	}
	if !registry.ValidID(id) {
		return nil, registry.ErrNotFound
	}
	_, svcs, err := a.reg.Services(ctx, 0, 0)
	if err != nil {
		return nil, err
	}
	for _, s := range svcs {
		in, err := a.reg.Get(registry.Key{Service: s.Name, ID: id})
		if err == nil {
			a.ids.remember(in)
			return in, nil
		}
		if !errors.Is(err, registry.ErrNotFound) {
			return nil, err
		}
	}
	return nil, registry.ErrNotFound
}

// findCheck returns the instance holding the check Consul calls id, and
// the check's registry ID (see consulCheckID for the mapping).
func (a *API) findCheck(ctx context.Context, id string) (*registry.Instance, string, error) {
	chosen := !strings.Contains(id, ":")
	if key, ok := a.ids.check(id); ok {
		in, err := a.reg.Get(key)
		if err == nil {
			if c := checkOf(in, id); c != nil {
				return in, c.ID, nil
			}
			if c := in.Check(id); chosen && c != nil {
				return in, c.ID, nil
			}
		} else if !errors.Is(err, registry.ErrNotFound) {
			return nil, "", err
		}
		a.ids.forgetCheck(id)
	}
	// "service:<instance id>[:<suffix>]": try the instance IDs it may
	// hold, longest first.
	if rest, ok := strings.CutPrefix(id, "service:"); ok {
		cands := []string{rest}
		for i := len(rest) - 1; i > 0; i-- {
			if rest[i] == ':' {
				cands = append(cands, rest[:i])
			}
		}
		for _, sid := range cands {
			in, err := a.findInstance(ctx, sid)
			if errors.Is(err, registry.ErrNotFound) {
				continue
			}
			if err != nil {
				return nil, "", err
			}
			if c := checkOf(in, id); c != nil {
				a.ids.remember(in)
				return in, c.ID, nil
			}
		}
	}
	// A chosen CheckID names no instance: search every instance. One
	// without a ':' may be sent as chosen; it names a check only when
	// exactly one instance has it (the native API's "ttl" names many).
	_, svcs, err := a.reg.Services(ctx, 0, 0)
	if err != nil {
		return nil, "", err
	}
	var owner *registry.Instance
	owners := 0
	for _, s := range svcs {
		res, err := a.reg.Instances(ctx, registry.Query{Service: s.Name}, 0, 0)
		if err != nil {
			return nil, "", err
		}
		for _, in := range res.Instances {
			if c := checkOf(in, id); c != nil {
				a.ids.remember(in)
				return in, c.ID, nil
			}
			if chosen && in.Check(id) != nil {
				owner = in
				owners++
			}
		}
	}
	if owners == 1 {
		a.ids.rememberChosen(owner)
		return owner, id, nil
	}
	return nil, "", registry.ErrNotFound
}
