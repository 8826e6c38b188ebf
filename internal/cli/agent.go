package cli

import (
	"context"
	"errors"
	"flag"
	"log/slog"

	"github.com/rosterhq/roster/internal/config"
	"github.com/rosterhq/roster/internal/server"
)

func runAgent(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet("agent", e)
	cfg, err := config.Load(fs, args, e.getenv)
	if errors.Is(err, flag.ErrHelp) {
		printHelp(e.stderr, fs)
		return err
	}
	if err != nil {
		return usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return usageError{"unexpected argument " + fs.Arg(0)}
	}
	var compat []string
	if cfg.SDSCompat {
		if compat, err = applySDSCompat(cfg, args, e.getenv); err != nil {
			return usageError{err.Error()}
		}
	}
	log := newLogger(e, cfg)
	if cfg.SDSCompat {
		log.Info("sds compatibility mode", "applied", compat)
	}
	srv, err := server.New(*cfg, log)
	if err != nil {
		return err
	}
	return srv.Run(ctx)
}

func newLogger(e *env, cfg *config.Config) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(e.stderr, opts))
	}
	return slog.New(slog.NewTextHandler(e.stderr, opts))
}
