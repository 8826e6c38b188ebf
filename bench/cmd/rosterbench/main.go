// Command rosterbench is roster's load generator. It starts a roster agent
// and an etcd 3.4 server on loopback ports, runs named scenarios against
// each in turn (never both at once), and prints a markdown table of
// throughput, latency percentiles, CPU and memory with the ratio
// roster/etcd and the target from the foundation issue.
//
//	go run ./bench/cmd/rosterbench -scenario all -duration 10s
//	go run ./bench/cmd/rosterbench -smoke          # every scenario, tiny, for CI
//
// Scenarios: register, query, consul, watch, heartbeat, memory, cluster. See bench/README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

var allScenarios = []string{"register", "query", "consul", "watch", "heartbeat", "memory", "cluster"}

type options struct {
	scenarios []string
	smoke     bool
	duration  time.Duration
	warmup    time.Duration
	clients   int

	rosterBin, etcdBin string
	noEtcd             bool
	dataDir            string
	keep               bool
	out                string
	profileDir         string

	registerTTL      string
	queryInstances   int
	etcdSerializable bool

	watchers, watchRounds, watchInstances, watchConns int

	hbInstances, hbServices, hbConns, hbBatch, hbBatchConns, etcdLeases int
	hbInterval, hbTTL, hbWindow                                         time.Duration

	memInstances, memServices int
	memSettle                 time.Duration
}

func parseFlags(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("rosterbench", flag.ContinueOnError)
	scen := fs.String("scenario", "all", "comma-separated scenarios: "+strings.Join(allScenarios, ",")+" or all")
	fs.BoolVar(&o.smoke, "smoke", false, "run every selected scenario tiny (about a second each); etcd only if installed")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "measured time of the register and query scenarios")
	fs.DurationVar(&o.warmup, "warmup", time.Second, "unmeasured time before each register/query measurement")
	fs.IntVar(&o.clients, "clients", 32, "concurrent clients for register and query")
	fs.StringVar(&o.rosterBin, "roster-bin", "", "roster binary (default: go build ./cmd/roster into the work dir)")
	fs.StringVar(&o.etcdBin, "etcd-bin", "", "etcd binary (default: etcd on PATH)")
	fs.BoolVar(&o.noEtcd, "no-etcd", false, "measure roster only")
	fs.StringVar(&o.dataDir, "data-dir", "", "parent of the servers' data dirs (default: a new temp dir); its disk is reported")
	fs.BoolVar(&o.keep, "keep", false, "keep the data dirs")
	fs.StringVar(&o.out, "out", "", "also write the markdown report to this file")
	fs.StringVar(&o.profileDir, "profile-dir", "", "run the agent built from ./bench/cmd/rosterprof and save a CPU profile of each measured roster window here")
	fs.StringVar(&o.registerTTL, "register-ttl", "10m", "TTL of registrations in register and memory (etcd: the lease TTL); longer than the run so nothing expires")
	fs.IntVar(&o.queryInstances, "query-instances", 100, "instances of the queried service")
	fs.BoolVar(&o.etcdSerializable, "etcd-serializable", false, "etcd reads serializable instead of its default linearizable")
	fs.IntVar(&o.watchers, "watchers", 1000, "blocking watchers / watch streams")
	fs.IntVar(&o.watchRounds, "watch-rounds", 20, "writes, each waking every watcher")
	fs.IntVar(&o.watchInstances, "watch-instances", 10, "instances in the watched service before the rounds")
	fs.IntVar(&o.watchConns, "watch-conns", 10, "etcd gRPC connections the watch streams share")
	fs.IntVar(&o.hbInstances, "hb-instances", 100000, "instances (roster) heartbeating")
	fs.IntVar(&o.hbServices, "hb-services", 1000, "services the heartbeating instances are spread over")
	fs.DurationVar(&o.hbInterval, "hb-interval", 5*time.Second, "heartbeat interval of each instance / lease")
	fs.DurationVar(&o.hbTTL, "hb-ttl", 10*time.Second, "TTL of heartbeating instances and leases")
	fs.DurationVar(&o.hbWindow, "hb-window", 60*time.Second, "measured CPU window of each heartbeat mode")
	fs.IntVar(&o.hbConns, "hb-conns", 64, "connections for single heartbeats (etcd: keep-alive streams, one per connection)")
	fs.IntVar(&o.hbBatch, "hb-batch", 1000, "instances per batch heartbeat request")
	fs.IntVar(&o.hbBatchConns, "hb-batch-conns", 4, "connections for batch heartbeats")
	fs.IntVar(&o.etcdLeases, "etcd-leases", 10000, "etcd leases kept alive in the heartbeat scenario")
	fs.IntVar(&o.memInstances, "mem-instances", 100000, "instances (etcd: keys, each with its own lease) in the memory scenario")
	fs.IntVar(&o.memServices, "mem-services", 1000, "services in the memory scenario")
	fs.DurationVar(&o.memSettle, "mem-settle", 15*time.Second, "idle time before the settled memory reading")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	for _, s := range strings.Split(*scen, ",") {
		s = strings.TrimSpace(s)
		switch {
		case s == "all":
			o.scenarios = append(o.scenarios, allScenarios...)
		case slices.Contains(allScenarios, s):
			o.scenarios = append(o.scenarios, s)
		default:
			return o, fmt.Errorf("unknown scenario %q (want %s or all)", s, strings.Join(allScenarios, ","))
		}
	}
	if o.smoke {
		o.applySmoke(fs)
	}
	if o.clients < 1 || o.watchers < 1 || o.watchRounds < 1 || o.hbInstances < 1 || o.hbServices < 1 ||
		o.hbConns < 1 || o.hbBatch < 1 || o.hbBatch > 10000 || o.hbBatchConns < 1 || o.etcdLeases < 1 ||
		o.memInstances < 1 || o.memServices < 1 || o.queryInstances < 1 || o.watchConns < 1 {
		return o, errors.New("counts must be positive (and -hb-batch at most 10000)")
	}
	if o.hbInterval <= 0 || o.hbTTL <= o.hbInterval {
		return o, errors.New("-hb-ttl must be longer than -hb-interval")
	}
	return o, nil
}

// applySmoke shrinks every size the user did not set, so all scenarios
// finish in well under a minute.
func (o *options) applySmoke(fs *flag.FlagSet) {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	small := map[string]string{
		"duration": "1s", "warmup": "0s", "clients": "4", "watchers": "50", "watch-rounds": "3",
		"watch-conns": "2", "hb-instances": "2000", "hb-services": "20", "hb-interval": "1s",
		"hb-window": "1s", "hb-conns": "8", "hb-batch": "500", "hb-batch-conns": "2", "etcd-leases": "500",
		"mem-instances": "2000", "mem-services": "20", "mem-settle": "500ms",
	}
	for name, v := range small {
		if !set[name] {
			_ = fs.Set(name, v)
		}
	}
}

func main() {
	o, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "rosterbench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "rosterbench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) error {
	work, err := os.MkdirTemp(o.dataDir, "rosterbench-")
	if err != nil {
		return err
	}
	if !o.keep {
		defer os.RemoveAll(work)
	}
	b := &bench{o: o, work: work}
	if o.profileDir != "" {
		if err := os.MkdirAll(o.profileDir, 0o755); err != nil {
			return err
		}
	}
	if b.rosterBin = o.rosterBin; b.rosterBin == "" {
		pkg := "github.com/rosterhq/roster/cmd/roster"
		if o.profileDir != "" {
			pkg = "github.com/rosterhq/roster/bench/cmd/rosterprof"
		}
		progress("building %s", pkg)
		if b.rosterBin, err = buildRoster(ctx, work, pkg); err != nil {
			return err
		}
	}
	if !o.noEtcd {
		name := o.etcdBin
		if name == "" {
			name = "etcd"
		}
		b.etcdBin, err = exec.LookPath(name)
		if err != nil || b.etcdBin == "" {
			if !o.smoke {
				return fmt.Errorf("etcd not found (apt-get install etcd-server, or -etcd-bin, or -no-etcd): %v", err)
			}
			b.etcdBin = ""
			b.note("etcd is not installed: roster only.")
		}
	}
	b.machine = describeMachine(work, b.etcdBin)
	started := time.Now()
	for _, s := range o.scenarios {
		progress("scenario %s (load average %s)", s, loadAvg())
		bg := startBackground()
		if err := scenarioFuncs[s](ctx, b); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
		b.background = append(b.background, fmt.Sprintf("%s %.0f%%", s, bg.percent()))
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	b.machine.LoadEnd = loadAvg()
	b.elapsed = time.Since(started)
	report := b.report()
	fmt.Print(report)
	if o.out != "" {
		if err := os.WriteFile(o.out, []byte(report), 0o644); err != nil {
			return err
		}
	}
	if o.keep {
		progress("data kept in %s", work)
	}
	return nil
}

var scenarioFuncs = map[string]func(context.Context, *bench) error{
	"register":  registerScenario,
	"query":     queryScenario,
	"consul":    consulScenario,
	"watch":     watchScenario,
	"heartbeat": heartbeatScenario,
	"memory":    memoryScenario,
	"cluster":   clusterScenario,
}

// progress reports what the harness is doing on standard error.
func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s rosterbench: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// bench is one run's state: the binaries, the work dir and the results.
type bench struct {
	o                  options
	work               string
	rosterBin, etcdBin string
	machine            machine
	rows               []row
	notes              []string
	elapsed            time.Duration
	dirs               int
	// background is the CPU other processes used during each scenario.
	background []string
}

func (b *bench) etcd() bool { return b.etcdBin != "" }

func (b *bench) note(format string, args ...any) {
	b.notes = append(b.notes, fmt.Sprintf(format, args...))
}

func (b *bench) newDir(name string) string {
	b.dirs++
	return filepath.Join(b.work, fmt.Sprintf("%02d-%s", b.dirs, name))
}

// startRoster starts a fresh agent with its own data dir.
func (b *bench) startRoster(ctx context.Context, name string) (*server, error) {
	return b.startRosterIn(ctx, b.newDir("roster-"+name))
}

func (b *bench) startRosterIn(ctx context.Context, dir string, env ...string) (*server, error) {
	pprof := ""
	if b.o.profileDir != "" {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		pprof = fmt.Sprintf("127.0.0.1:%d", port)
		env = append(env, "ROSTERPROF_PPROF_ADDR="+pprof)
	}
	s, err := startRoster(ctx, b.rosterBin, dir, env)
	if err != nil {
		return nil, err
	}
	s.pprof = pprof
	return s, nil
}

// startEtcd starts a fresh etcd and dials n connections to it.
func (b *bench) startEtcd(ctx context.Context, name string, n int) (*server, []*etcdConn, error) {
	s, err := startEtcd(ctx, b.etcdBin, b.newDir("etcd-"+name))
	if err != nil {
		return nil, nil, err
	}
	conns := make([]*etcdConn, n)
	for i := range conns {
		if conns[i], err = dialEtcd(s.addr); err != nil {
			closeAll(conns)
			s.stop(10 * time.Second)
			return nil, nil, err
		}
	}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := conns[0].Status(sctx); err != nil {
		closeAll(conns)
		s.stop(10 * time.Second)
		return nil, nil, fmt.Errorf("etcd status: %w", err)
	}
	return s, conns, nil
}

func closeAll(conns []*etcdConn) {
	for _, c := range conns {
		if c != nil {
			c.Close()
		}
	}
}

// stopServer stops s and records an unclean exit as a note.
func (b *bench) stopServer(s *server) {
	if _, err := s.stop(20 * time.Second); err != nil {
		b.note("%s: %v", s.name, err)
	}
}
