// Command rosterprof is the roster agent with Go's pprof handlers on a
// second loopback listener, for profiling under load. It takes the same
// arguments as `roster agent` (the word "agent" is optional) and serves
// /debug/pprof/ on $ROSTERPROF_PPROF_ADDR when set; with
// ROSTERPROF_MUTEX=1 it also samples mutex contention; with
// ROSTERPROF_STARTUP_CPUPROFILE=FILE it writes a CPU profile of its first
// ROSTERPROF_STARTUP_SECONDS (default 10) seconds, which covers a restart.
// rosterbench -profile-dir builds and runs it instead of cmd/roster.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	_ "net/http/pprof" // registers /debug/pprof/ on http.DefaultServeMux
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/rosterhq/roster/internal/config"
	"github.com/rosterhq/roster/internal/server"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		fmt.Fprintln(os.Stderr, "rosterprof:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) > 0 && args[0] == "agent" {
		args = args[1:]
	}
	fs := flag.NewFlagSet("rosterprof", flag.ContinueOnError)
	cfg, err := config.Load(fs, args, os.Getenv)
	if err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		return err
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(os.Stderr, opts)
	if cfg.LogFormat == "json" {
		h = slog.NewJSONHandler(os.Stderr, opts)
	}
	log := slog.New(h)
	if path := os.Getenv("ROSTERPROF_STARTUP_CPUPROFILE"); path != "" {
		secs, _ := strconv.Atoi(os.Getenv("ROSTERPROF_STARTUP_SECONDS"))
		if secs <= 0 {
			secs = 10
		}
		stop, err := startupProfile(path, time.Duration(secs)*time.Second)
		if err != nil {
			return err
		}
		defer stop()
	}
	if os.Getenv("ROSTERPROF_MUTEX") == "1" {
		runtime.SetMutexProfileFraction(10)
	}
	if addr := os.Getenv("ROSTERPROF_PPROF_ADDR"); addr != "" {
		go func() {
			if err := http.ListenAndServe(addr, nil); err != nil {
				log.Error("pprof listener", "addr", addr, "err", err)
			}
		}()
	}
	srv, err := server.New(*cfg, log)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return srv.Run(ctx)
}

// startupProfile profiles the CPU into path for d, or until the returned
// func is called.
func startupProfile(path string, d time.Duration) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			pprof.StopCPUProfile()
			f.Close()
		})
	}
	time.AfterFunc(d, stop)
	return stop, nil
}
