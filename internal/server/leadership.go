package server

import (
	"context"
	"log/slog"

	"github.com/rosterhq/roster/internal/raftlog"
)

// leadership runs the leader's duties (leases and active checks) while
// this agent leads, from the moment its state is caught up, and stops
// them when it loses leadership.
type leadership struct {
	node *raftlog.Node
	log  *slog.Logger
	// duties run, in order, under runComponents each time this agent
	// gains leadership; they are stopped in reverse when it loses it.
	duties []component
}

// Run follows leadership until ctx ends. It returns early with the error
// of a duty whose failure stops the agent.
func (l *leadership) Run(ctx context.Context) error {
	var (
		stop   func()
		done   chan struct{}
		failed = make(chan error, 1)
	)
	start := func() {
		lctx, cancel := context.WithCancel(ctx)
		stop, done = cancel, make(chan struct{})
		go func() {
			defer close(done)
			if err := l.lead(lctx); err != nil {
				select {
				case failed <- err:
				default: // one failure is enough to stop
				}
			}
		}()
	}
	halt := func() {
		if stop != nil {
			stop()
			<-done
			stop = nil
		}
	}
	defer halt()
	if l.node.IsLeader() {
		start()
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-failed:
			return err
		case leader := <-l.node.LeaderCh():
			halt()
			if leader {
				start()
			} else {
				l.log.Info("leadership lost: leases and checks stopped")
			}
		}
	}
}

// lead waits for the log to be caught up, then runs the duties until ctx
// ends.
func (l *leadership) lead(ctx context.Context) error {
	if err := l.node.Barrier(ctx); err != nil {
		if ctx.Err() == nil {
			l.log.Warn("leadership: catching up failed", "err", err)
		}
		return nil
	}
	l.log.Info("leading: leases and checks started")
	return runComponents(ctx, l.log, l.duties, nil)
}
