// Package cli implements the roster command: `roster agent` runs the
// agent; every other subcommand talks to an agent's HTTP API through the
// Go SDK (--http-addr, ROSTER_HTTP_ADDR), prints a table for people or
// JSON with --json, and exits non-zero with a one-line reason on failure.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
)

// Exit codes.
const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
)

type env struct {
	stdout, stderr io.Writer
	getenv         func(string) string
}

type command struct {
	summary string
	run     func(ctx context.Context, e *env, args []string) error
}

var commands map[string]command

func init() {
	commands = map[string]command{
		"agent":      {"run an agent", runAgent},
		"register":   {"register or update an instance", runRegister},
		"deregister": {"deregister an instance: deregister SERVICE ID", runDeregister},
		"heartbeat":  {"renew an instance's TTL lease: heartbeat SERVICE ID", runHeartbeat},
		"services":   {"list services with instance and health counts", runServices},
		"instances":  {"list a service's instances: instances NAME [--passing] [--tag T]", runInstances},
		"watch":      {"print changes to a service's instances as they happen: watch NAME", runWatch},
		"snapshot":   {"save or restore the registry: snapshot save|restore FILE", runSnapshot},
		"members":    {"list the servers of the agent's cluster with role, health and last contact", runMembers},
		"operator":   {"cluster operations: operator raft remove-peer ID|ADDRESS", runOperator},
		"sds":        {"run an agent in discovery-service (v1 SDS) compatibility mode: agent -sds-compat", runSDS},
		"proxy":      {"run a load-balancing HTTP proxy to a service's healthy instances", runProxy},
	}
}

// usageError is a mistake on the command line.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// Main runs the command line args (without the program name) and returns
// the exit code. SIGINT and SIGTERM cancel the command's context: the
// agent shuts down, watch and proxy stop, and a request in flight is
// abandoned with a one-line reason.
func Main(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return run(ctx, &env{stdout: stdout, stderr: stderr, getenv: os.Getenv}, args)
}

// run is Main under ctx.
func run(ctx context.Context, e *env, args []string) int {
	stderr := e.stderr
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "roster: unknown command %q (see roster help)\n", args[0])
		return exitUsage
	}
	err := cmd.run(ctx, e, args[1:])
	var uerr usageError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.As(err, &uerr):
		fmt.Fprintf(stderr, "roster %s: %s\n", args[0], uerr.msg)
		return exitUsage
	default:
		fmt.Fprintf(stderr, "roster %s: %s\n", args[0], oneLine(err.Error()))
		return exitFail
	}
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: roster COMMAND [flags] [args]")
	fmt.Fprintln(w)
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-11s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nRun roster COMMAND -h for its flags.")
}

// parse parses flags that may come before, between or after positional
// arguments, and returns the positional ones.
func parse(e *env, fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				printHelp(e.stderr, fs)
				return nil, err
			}
			return nil, usageError{err.Error()}
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

// clientFlags are the flags of every command that talks to an agent.
type clientFlags struct {
	addr string
	json bool
}

func (c *clientFlags) bind(fs *flag.FlagSet, e *env) {
	def := e.getenv("ROSTER_HTTP_ADDR")
	if def == "" {
		def = "127.0.0.1:8500"
	}
	fs.StringVar(&c.addr, "http-addr", def, "agent HTTP address (env ROSTER_HTTP_ADDR)")
	fs.BoolVar(&c.json, "json", false, "print JSON for scripts")
}

// newFlagSet returns a flag set that reports errors only through the
// error it returns (so the message is one line) and prints its flags for
// -h via printHelp.
func newFlagSet(name string, e *env) *flag.FlagSet {
	fs := flag.NewFlagSet("roster "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

func printHelp(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprintf(w, "usage of %s:\n", fs.Name())
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
}
