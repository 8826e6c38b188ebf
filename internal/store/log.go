package store

import (
	"context"
	"fmt"

	"github.com/rosterhq/roster/internal/registry"
)

// Appender makes an encoded entry durable and applies it. raftlog.Node
// implements it; the response is what ApplyBatch returned for the entry.
type Appender interface {
	Append(ctx context.Context, entry []byte) (Response, error)
}

// Log is the registry's Applier: it encodes ops and appends them.
type Log struct {
	app Appender
}

var _ registry.Applier = (*Log)(nil)

// NewLog returns a Log writing through app.
func NewLog(app Appender) *Log { return &Log{app: app} }

// Apply implements registry.Applier.
func (l *Log) Apply(ctx context.Context, op registry.Op) (registry.ApplyResult, error) {
	b, err := Encode(op)
	if err != nil {
		return registry.ApplyResult{}, err
	}
	resp, err := l.app.Append(ctx, b)
	if err != nil {
		return registry.ApplyResult{}, fmt.Errorf("append: %w", err)
	}
	return resp.Result, resp.Err
}
