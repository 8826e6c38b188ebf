package store

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/rosterhq/roster/internal/registry"
)

// Appender makes an encoded entry durable and applies it. raftlog.Node
// implements it; the response is what ApplyBatch returned for the entry.
type Appender interface {
	Append(ctx context.Context, entry []byte) (Response, error)
}

// Log is the registry's Applier: it encodes ops and appends them.
type Log struct {
	st  *Store
	app Appender
}

var _ registry.Applier = (*Log)(nil)

// NewLog returns a Log writing through app to st.
func NewLog(st *Store, app Appender) *Log { return &Log{st: st, app: app} }

// Apply implements registry.Applier. While the entry is in flight, the op
// is left with the store by the address of its encoding, so that applying
// it here need not decode what was just encoded. Other nodes, and this
// one replaying its log, decode.
func (l *Log) Apply(ctx context.Context, op registry.Op) (registry.ApplyResult, error) {
	b, err := Encode(op)
	if err != nil {
		return registry.ApplyResult{}, err
	}
	l.st.pending.put(&b[0], op)
	defer l.st.pending.take(&b[0])
	resp, err := l.app.Append(ctx, b)
	if err != nil {
		return registry.ApplyResult{}, fmt.Errorf("append: %w", err)
	}
	return resp.Result, resp.Err
}

// pendingOps maps in-flight entries to their decoded ops.
type pendingOps struct {
	mu sync.Mutex
	m  map[*byte]registry.Op
}

func (p *pendingOps) put(k *byte, op registry.Op) {
	p.mu.Lock()
	if p.m == nil {
		p.m = map[*byte]registry.Op{}
	}
	p.m[k] = op
	p.mu.Unlock()
}

func (p *pendingOps) take(k *byte) registry.Op {
	p.mu.Lock()
	op, ok := p.m[k]
	if ok {
		delete(p.m, k)
	}
	p.mu.Unlock()
	return op
}

// opFor returns the op of an entry: the one this node encoded it from,
// copied so the store owns what it keeps, or else decoded.
func (s *Store) opFor(data []byte) (registry.Op, error) {
	if len(data) > 0 {
		if op := s.pending.take(&data[0]); op != nil {
			if r, ok := op.(*registry.RegisterOp); ok {
				c := *r
				c.Instance = ownCopy(r.Instance)
				return &c, nil
			}
			return op, nil
		}
	}
	return Decode(data)
}

// ownCopy copies what the store may change or keep of an instance handed
// in by a caller: the struct and its checks, and the strings that may
// point into a larger buffer (a request line). The applier's interner
// gives tags and metadata copies of the store's own.
func ownCopy(in *registry.Instance) *registry.Instance {
	c := *in
	c.ID = strings.Clone(in.ID)
	c.Address = strings.Clone(in.Address)
	c.Checks = slices.Clone(in.Checks)
	for i := range c.Checks {
		c.Checks[i].Target = strings.Clone(c.Checks[i].Target)
		c.Checks[i].Output = strings.Clone(c.Checks[i].Output)
	}
	return &c
}
