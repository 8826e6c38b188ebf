package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/rosterhq/roster/client"
)

// instance is the agent's JSON form of an instance, as far as the CLI
// prints it (client.Instance prints more fields, and omits zero weights).
type instance struct {
	Service     string            `json:"service"`
	ID          string            `json:"id"`
	Address     string            `json:"address"`
	Port        int               `json:"port"`
	Tags        []string          `json:"tags,omitempty"`
	Meta        map[string]string `json:"meta,omitempty"`
	Weight      int               `json:"weight"`
	Priority    int               `json:"priority"`
	Zone        string            `json:"zone,omitempty"`
	Health      string            `json:"health"`
	ModifyIndex uint64            `json:"modify_index"`
}

func toInstance(in *client.Instance) instance {
	return instance{
		Service: in.Service, ID: in.ID, Address: in.Address, Port: in.Port, Tags: in.Tags, Meta: in.Meta,
		Weight: in.Weight, Priority: in.Priority, Zone: in.Zone, Health: in.Health, ModifyIndex: in.ModifyIndex,
	}
}

func toInstances(ins []client.Instance) []instance {
	if ins == nil {
		return nil
	}
	out := make([]instance, len(ins))
	for i := range ins {
		out[i] = toInstance(&ins[i])
	}
	return out
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func runRegister(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet("register", e)
	var c clientFlags
	c.bind(fs, e)
	var (
		file                               = fs.String("file", "", "read the instance as JSON from this file (- for stdin); flags override its fields")
		service                            = fs.String("service", "", "service name (required)")
		id                                 = fs.String("id", "", "instance ID (generated when empty)")
		address                            = fs.String("address", "", "IP address or host name (required)")
		port                               = fs.Int("port", 0, "port (required)")
		weight                             = fs.Int("weight", 0, "weight 1-100 (default 1)")
		priority                           = fs.Int("priority", 0, "priority 0-65535, lower is preferred")
		zone, region, revision, repo, ttl  string
		deregAfter, httpCheck, tcpCheck    string
		grpcCheck, checkInterval, checkTmo string
		canary                             bool
		tags, meta                         stringList
	)
	fs.StringVar(&zone, "zone", "", "zone")
	fs.StringVar(&region, "region", "", "region")
	fs.StringVar(&revision, "revision", "", "revision")
	fs.StringVar(&repo, "repo", "", "repository name")
	fs.StringVar(&ttl, "ttl", "", "TTL lease, e.g. 10s: heartbeat within it or turn critical")
	fs.StringVar(&deregAfter, "deregister-after", "", "remove the instance after it has been critical this long")
	fs.StringVar(&httpCheck, "check-http", "", "URL of an HTTP health check")
	fs.StringVar(&tcpCheck, "check-tcp", "", "host:port of a TCP health check")
	fs.StringVar(&grpcCheck, "check-grpc", "", "host:port[/service] of a gRPC health check")
	fs.StringVar(&checkInterval, "check-interval", "", "interval of the active check (default 10s)")
	fs.StringVar(&checkTmo, "check-timeout", "", "timeout of the active check")
	fs.BoolVar(&canary, "canary", false, "mark the instance as a canary")
	fs.Var(&tags, "tag", "tag (repeatable)")
	fs.Var(&meta, "meta", "metadata key=value (repeatable)")
	pos, err := parse(e, fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageError{"unexpected argument " + pos[0]}
	}
	body := map[string]any{}
	if *file != "" {
		if err := readJSONFile(*file, &body); err != nil {
			return err
		}
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	put := func(flag, key string, v any) {
		if set[flag] {
			body[key] = v
		}
	}
	put("service", "service", *service)
	put("id", "id", *id)
	put("address", "address", *address)
	put("port", "port", *port)
	put("weight", "weight", *weight)
	put("priority", "priority", *priority)
	put("zone", "zone", zone)
	put("region", "region", region)
	put("revision", "revision", revision)
	put("repo", "repo", repo)
	put("ttl", "ttl", ttl)
	put("deregister-after", "deregister_after", deregAfter)
	put("canary", "canary", canary)
	put("tag", "tags", []string(tags))
	if set["meta"] {
		m := map[string]string{}
		for _, kv := range meta {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				return usageError{"--meta wants key=value, got " + kv}
			}
			m[k] = v
		}
		body["meta"] = m
	}
	// In the order of the flags: a map here sent the checks in a random
	// order.
	for _, c := range [...]struct{ typ, target string }{{"http", httpCheck}, {"tcp", tcpCheck}, {"grpc", grpcCheck}} {
		typ, target := c.typ, c.target
		if target == "" {
			continue
		}
		chk := map[string]any{"type": typ, "target": target, "interval": checkInterval, "timeout": checkTmo}
		checks, _ := body["checks"].([]any)
		body["checks"] = append(checks, chk)
	}
	svc, _ := body["service"].(string)
	if svc == "" {
		return usageError{"--service is required"}
	}
	doc, err := json.Marshal(body)
	if err != nil {
		return err
	}
	iid, _ := body["id"].(string)
	a, err := newAgent(c.addr)
	if err != nil {
		return err
	}
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	in, err := a.PutDocument(rctx, svc, iid, doc)
	if err != nil {
		return a.explain(ctx, err)
	}
	out := toInstance(in)
	if c.json {
		return printJSON(e.stdout, out)
	}
	fmt.Fprintf(e.stdout, "registered %s/%s at %s (%s, index %d)\n", out.Service, out.ID, hostPort(out.Address, out.Port), out.Health, out.ModifyIndex)
	return nil
}

func readJSONFile(path string, v any) error {
	var r io.Reader = os.Stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		r = f
	}
	if err := json.NewDecoder(io.LimitReader(r, 1<<20)).Decode(v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

func hostPort(addr string, port int) string {
	if strings.Contains(addr, ":") {
		return "[" + addr + "]:" + strconv.Itoa(port)
	}
	return addr + ":" + strconv.Itoa(port)
}

func twoArgs(name string, e *env, args []string) (*clientFlags, string, string, error) {
	fs := newFlagSet(name, e)
	var c clientFlags
	c.bind(fs, e)
	pos, err := parse(e, fs, args)
	if err != nil {
		return nil, "", "", err
	}
	if len(pos) != 2 {
		return nil, "", "", usageError{"wants SERVICE ID"}
	}
	return &c, pos[0], pos[1], nil
}

func runDeregister(ctx context.Context, e *env, args []string) error {
	c, svc, id, err := twoArgs("deregister", e, args)
	if err != nil {
		return err
	}
	a, err := newAgent(c.addr)
	if err != nil {
		return err
	}
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	if err := a.Remove(rctx, svc, id); err != nil {
		return a.explain(ctx, err)
	}
	if c.json {
		return printJSON(e.stdout, map[string]any{"deregistered": true, "service": svc, "id": id})
	}
	fmt.Fprintf(e.stdout, "deregistered %s/%s\n", svc, id)
	return nil
}

func runHeartbeat(ctx context.Context, e *env, args []string) error {
	c, svc, id, err := twoArgs("heartbeat", e, args)
	if err != nil {
		return err
	}
	a, err := newAgent(c.addr)
	if err != nil {
		return err
	}
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	if err := a.Heartbeat(rctx, svc, id); err != nil {
		return a.explain(ctx, err)
	}
	if !c.json {
		fmt.Fprintf(e.stdout, "renewed %s/%s\n", svc, id)
	}
	return nil
}

// serviceCount is one row of services: client.ServiceSummary without
// modify_index.
type serviceCount struct {
	Name      string `json:"name"`
	Instances int    `json:"instances"`
	Passing   int    `json:"passing"`
	Warning   int    `json:"warning"`
	Critical  int    `json:"critical"`
}

func runServices(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet("services", e)
	var c clientFlags
	c.bind(fs, e)
	pos, err := parse(e, fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageError{"unexpected argument " + pos[0]}
	}
	a, err := newAgent(c.addr)
	if err != nil {
		return err
	}
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	ans, err := a.ListServices(rctx, 0, 0)
	if err != nil {
		return a.explain(ctx, err)
	}
	out := struct {
		Index    uint64         `json:"index"`
		Services []serviceCount `json:"services"`
	}{Index: ans.Index}
	if ans.Services != nil {
		out.Services = make([]serviceCount, len(ans.Services))
		for i, s := range ans.Services {
			out.Services[i] = serviceCount{Name: s.Name, Instances: s.Instances, Passing: s.Passing, Warning: s.Warning, Critical: s.Critical}
		}
	}
	if c.json {
		return printJSON(e.stdout, out)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tINSTANCES\tPASSING\tWARNING\tCRITICAL")
	for _, s := range out.Services {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\n", s.Name, s.Instances, s.Passing, s.Warning, s.Critical)
	}
	return tw.Flush()
}

// filterFlags are the instance filters of instances and watch.
type filterFlags struct {
	passing, healthy bool
	zone             string
	tags, meta       stringList
}

func (f *filterFlags) bind(fs *flag.FlagSet) {
	fs.BoolVar(&f.passing, "passing", false, "only passing instances")
	fs.BoolVar(&f.healthy, "healthy", false, "only passing and warning instances")
	fs.StringVar(&f.zone, "zone", "", "only instances in this zone")
	fs.Var(&f.tags, "tag", "only instances with this tag (repeatable)")
	fs.Var(&f.meta, "meta", "only instances with metadata key=value (repeatable)")
}

// options are the filters as the SDK sends them: every --meta as typed,
// so the agent judges a malformed one and the last of a key wins there.
func (f *filterFlags) options() client.QueryOptions {
	var o client.QueryOptions
	switch {
	case f.passing:
		o.Status = client.Passing
	case f.healthy:
		o.Status = client.Warning
	}
	o.Zone = f.zone
	o.Tags = f.tags
	o.MetaFilters = f.meta
	return o
}

func runInstances(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet("instances", e)
	var c clientFlags
	var f filterFlags
	c.bind(fs, e)
	f.bind(fs)
	pos, err := parse(e, fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError{"wants one service NAME"}
	}
	a, err := newAgent(c.addr)
	if err != nil {
		return err
	}
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	ans, err := a.ListInstances(rctx, pos[0], f.options())
	if err != nil {
		return a.explain(ctx, err)
	}
	out := struct {
		Service   string     `json:"service"`
		Index     uint64     `json:"index"`
		Instances []instance `json:"instances"`
	}{ans.Service, ans.Index, toInstances(ans.Instances)}
	if c.json {
		return printJSON(e.stdout, out)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tADDRESS\tHEALTH\tWEIGHT\tPRIORITY\tZONE\tTAGS")
	for _, in := range out.Instances {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\t%s\n", in.ID, hostPort(in.Address, in.Port), in.Health, in.Weight, in.Priority, dash(in.Zone), dash(strings.Join(in.Tags, ",")))
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// snapshotTimeout bounds a snapshot transfer.
const snapshotTimeout = 10 * time.Minute

func runSnapshot(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet("snapshot", e)
	var c clientFlags
	c.bind(fs, e)
	pos, err := parse(e, fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 || (pos[0] != "save" && pos[0] != "restore") {
		return usageError{"wants save FILE or restore FILE"}
	}
	a, err := newAgent(c.addr)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if pos[0] == "save" {
		return saveSnapshot(ctx, e, a, c.json, pos[1])
	}
	return restoreSnapshot(ctx, e, a, c.json, pos[1])
}

// saveSnapshot writes a temp file in the target directory, fsyncs and
// renames it, so a failed save leaves no partial file.
func saveSnapshot(ctx context.Context, e *env, a *agent, asJSON bool, file string) error {
	tmp, err := os.CreateTemp(filepath.Dir(file), ".roster-snapshot-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	rctx, cancel := context.WithTimeout(ctx, snapshotTimeout)
	defer cancel()
	if _, err := a.SaveSnapshot(rctx, tmp); err != nil {
		tmp.Close()
		var aerr *client.APIError
		var uerr *url.Error
		if !errors.As(err, &aerr) && !errors.As(err, &uerr) && errors.Unwrap(err) != nil && ctx.Err() == nil {
			err = errors.Unwrap(err) // the copy's own error, as SaveSnapshot wraps it once
		}
		return a.explain(ctx, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), file); err != nil {
		return err
	}
	if asJSON {
		return printJSON(e.stdout, map[string]any{"saved": file})
	}
	fmt.Fprintf(e.stdout, "saved snapshot to %s\n", file)
	return nil
}

func restoreSnapshot(ctx context.Context, e *env, a *agent, asJSON bool, file string) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	rctx, cancel := context.WithTimeout(ctx, snapshotTimeout)
	defer cancel()
	index, err := a.RestoreSnapshot(rctx, f)
	if err != nil {
		return a.explain(ctx, err)
	}
	if asJSON {
		return printJSON(e.stdout, map[string]any{"restored": file, "index": index})
	}
	fmt.Fprintf(e.stdout, "restored snapshot from %s (index %d)\n", file, index)
	return nil
}
