package xds

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rosterhq/roster/internal/registry"
)

// follow keeps the snapshot in step with the registry until ctx ends.
//
// It waits for the registry to be ready (polling Ready: a restoring
// registry has nothing to watch yet), then loops: take the watch on the
// service list, read the list, rebuild what changed, set the snapshot,
// wait for the watch. The watch is taken before the read, so no change
// slips between; changes that land while a rebuild runs are all picked up
// by the next one. The store fires the service-list key on every change
// to any instance, and each summary carries its service's index, so this
// one watch finds exactly the services to rebuild, without one watch per
// service.
//
// Until the first snapshot is set, clients' requests wait: no client is
// ever told the registry is empty while it is being restored.
func (s *Server) follow(ctx context.Context) {
	if !s.waitReady(ctx) {
		return
	}
	for {
		ch, release := s.cfg.Registry.Watch(registry.WatchServices)
		start := time.Now()
		if err := s.sync(ctx, start); err != nil && ctx.Err() == nil {
			// The next change tries again; nothing is half-applied.
			s.log.Warn("rebuilding xds resources failed", "err", err)
		}
		select {
		case <-ch:
			release()
		case <-ctx.Done():
			release()
			return
		}
	}
}

// waitReady polls the registry until it is ready; false if ctx ended
// first.
func (s *Server) waitReady(ctx context.Context) bool {
	if s.cfg.Registry.Ready() {
		return true
	}
	t := time.NewTicker(s.cfg.ReadyPoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			if s.cfg.Registry.Ready() {
				return true
			}
		}
	}
}

// sync reads the registry, rebuilds the services that changed and sets
// the snapshot when any resource did. start is when the change was
// noticed, for the push latency.
func (s *Server) sync(ctx context.Context, start time.Time) error {
	reg := s.cfg.Registry
	idx, services, err := reg.Services(ctx, 0, 0)
	if err != nil {
		return fmt.Errorf("read services: %w", err)
	}
	snap, rebuilt, err := s.builder.update(idx, services, func(name string) (serviceRead, error) {
		res, err := reg.Instances(ctx, registry.Query{Service: name}, 0, 0)
		if err != nil {
			return serviceRead{}, fmt.Errorf("read instances of %s: %w", name, err)
		}
		return serviceRead{index: res.Index, instances: res.Instances}, nil
	})
	s.m.rebuilt.Add(float64(rebuilt))
	if err != nil || snap == nil {
		return err
	}
	if err := consistent(snap); err != nil {
		// A bug, not a state of the registry: keep serving the last
		// good snapshot rather than one whose references dangle.
		return fmt.Errorf("inconsistent snapshot: %w", err)
	}
	if err := s.cache.SetSnapshot(ctx, nodeGroup, snap); err != nil {
		if errors.Is(err, context.Canceled) && ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("set snapshot: %w", err)
	}
	s.m.pushed(start, s.builder.services())
	return nil
}
