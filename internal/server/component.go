package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
)

// runner is what every long-running part of the agent is: a front door
// with its listener, the cluster side, the leadership loop, a shutdown
// step. It is built, and its listener bound, in New.
//
// Run is called once, from a goroutine of its own, and serves until ctx
// ends. It then stops: it lets what is in flight finish as its own
// documentation says, waits for every goroutine it started, releases its
// listener and returns nil. It returns before ctx ends only when it cannot
// go on, with the error that stopped it.
type runner interface {
	Run(ctx context.Context) error
}

// onFailure is what a component's failure (Run returning an error) does
// to the agent. Each component's choice is documented in the list in
// components.
type onFailure int

const (
	// stopAgent: the agent shuts down, and its Run returns the error
	// (the process exits non-zero).
	stopAgent onFailure = iota
	// carryOn: the failure is logged with the component's name at Error,
	// and the agent goes on without that component.
	carryOn
)

// component is one entry of an ordered list of runners.
type component struct {
	name    string // in logs and errors
	run     runner
	failure onFailure
	// listening, when set, is logged as "<name> listening" with these
	// attributes as the component starts (tests and operators read the
	// bound addresses from these lines).
	listening []any
}

// runComponents starts comps in order and waits until ctx ends or a
// component whose failure stops the agent fails. Then it calls stopping,
// if set, and stops the components in reverse order: it cancels the
// context of one and waits for its Run to return before the next, so that
// nothing is stopped while a component started after it still runs. It
// returns every failure that stops the agent, the first one first, each
// prefixed with its component's name.
func runComponents(ctx context.Context, log *slog.Logger, comps []component, stopping func()) error {
	type started struct {
		cancel context.CancelFunc
		done   chan struct{}
	}
	failed := make(chan error, len(comps))
	all := make([]started, len(comps))
	for i, c := range comps {
		// Each component has its own context, cancelled in reverse order
		// below, not when ctx ends.
		cctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		done := make(chan struct{})
		all[i] = started{cancel: cancel, done: done}
		if c.listening != nil {
			log.Info(c.name+" listening", c.listening...)
		}
		go func() {
			defer close(done)
			err := c.run.Run(cctx)
			switch {
			case err == nil:
			case c.failure == stopAgent:
				failed <- fmt.Errorf("%s: %w", c.name, err)
			default:
				log.Error("component failed", "component", c.name, "err", err)
			}
		}()
	}
	var errs []error
	select {
	case <-ctx.Done():
	case err := <-failed:
		errs = append(errs, err)
	}
	if stopping != nil {
		stopping()
	}
	for i := len(all) - 1; i >= 0; i-- {
		all[i].cancel()
		<-all[i].done
	}
	close(failed) // every sender has returned
	for err := range failed {
		errs = append(errs, err)
	}
	if len(errs) == 1 {
		return errs[0]
	}
	return errors.Join(errs...)
}

// onStop is a runner that does nothing until ctx ends, then runs stop: a
// step of the shutdown sequence that has its place in the list.
type onStop func() error

func (f onStop) Run(ctx context.Context) error {
	<-ctx.Done()
	return f()
}

// closers is New's undo stack: what has been opened or bound so far, in
// order. When New fails, close releases it in reverse. Once New succeeds
// the components own what they hold, and their Run releases it.
type closers []func() error

func (c *closers) push(f func() error) { *c = append(*c, f) }

// close releases everything in reverse order. Errors are dropped: New is
// already failing with the error that matters.
func (c closers) close() {
	for i := len(c) - 1; i >= 0; i-- {
		_ = c[i]()
	}
}
