package main

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// row is one line of the results table. NaN means not measured.
type row struct {
	scenario, metric string
	unit             string
	roster, etcd     float64
	// ratio prints roster/etcd.
	ratio bool
	goal  *goal
}

// goal is a target from the foundation issue.
type goal struct {
	min, max float64 // roster ≥ min, roster < max (when set)
	maxIncl  bool    // max is inclusive (≤)
	minRatio float64 // roster/etcd ≥ minRatio (when etcd was measured)
	maxRatio float64 // roster/etcd ≤ maxRatio (when etcd was measured)
}

// hasMax: a max of 0 counts only when inclusive ("≤ 0").
func (g *goal) hasMax() bool { return g.max > 0 || g.maxIncl }

func (g *goal) String() string {
	var parts []string
	if g.min > 0 {
		parts = append(parts, "≥ "+fmtNum(g.min))
	}
	if g.hasMax() {
		op := "< "
		if g.maxIncl {
			op = "≤ "
		}
		parts = append(parts, op+fmtNum(g.max))
	}
	if g.minRatio > 0 {
		parts = append(parts, fmt.Sprintf("≥ %g× etcd", g.minRatio))
	}
	if g.maxRatio > 0 {
		parts = append(parts, fmt.Sprintf("≤ %.2f× etcd", g.maxRatio))
	}
	return strings.Join(parts, ", ")
}

// met says whether roster reached the goal: "yes", "no", or with etcd
// missing, whether the absolute part was met.
func (g *goal) met(r row) string {
	if math.IsNaN(r.roster) {
		return "—"
	}
	ok := true
	if g.min > 0 && r.roster < g.min {
		ok = false
	}
	if g.hasMax() && (r.roster > g.max || (!g.maxIncl && r.roster == g.max)) {
		ok = false
	}
	ratioNote := ""
	if g.minRatio > 0 || g.maxRatio > 0 {
		switch {
		case math.IsNaN(r.etcd) || r.etcd == 0:
			ratioNote = " (no etcd ratio)"
		case g.minRatio > 0 && r.roster/r.etcd < g.minRatio, g.maxRatio > 0 && r.roster/r.etcd > g.maxRatio:
			ok = false
		}
	}
	if ratioNote != "" && g.min == 0 && !g.hasMax() {
		return "—" + ratioNote // nothing but the ratio to judge
	}
	if ok {
		return "yes" + ratioNote
	}
	return "**no**" + ratioNote
}

func (b *bench) add(r row) { b.rows = append(b.rows, r) }

func fmtNum(v float64) string {
	switch {
	case math.IsNaN(v):
		return "—"
	case math.IsInf(v, 0):
		return "∞"
	case v == math.Trunc(v):
		return fmt.Sprintf("%.0f", v)
	case math.Abs(v) >= 1000:
		return fmt.Sprintf("%.0f", v)
	case math.Abs(v) >= 100:
		return fmt.Sprintf("%.1f", v)
	case math.Abs(v) >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func mb(bytes int64) float64 { return float64(bytes) / (1 << 20) }

func (b *bench) report() string {
	var sb strings.Builder
	m := b.machine
	mode := "full"
	if b.o.smoke {
		mode = "smoke (tiny sizes: numbers are not meaningful, targets not judged)"
	}
	fmt.Fprintf(&sb, "# rosterbench results\n\n")
	fmt.Fprintf(&sb, "- date: %s, run took %s, mode: %s\n", m.Date, b.elapsed.Round(time.Second), mode)
	fmt.Fprintf(&sb, "- CPU: %s, %d cores; RAM %.1f GiB; kernel %s\n", m.CPU, m.Cores, float64(m.MemBytes)/(1<<30), m.Kernel)
	fmt.Fprintf(&sb, "- Go %s; etcd: %s; roster: %s\n", m.Go, m.Etcd, m.Source)
	fmt.Fprintf(&sb, "- data dirs: %s\n", m.Disk)
	fmt.Fprintf(&sb, "- load average (1/5/15 min) at start: %s, at end: %s\n", m.LoadStart, m.LoadEnd)
	fmt.Fprintf(&sb, "- CPU used by other processes (not this harness or its servers), %% of one core, per scenario: %s\n", strings.Join(b.background, ", "))
	fmt.Fprintf(&sb, "- sizes: %d clients for %s (+%s warm-up); query service %d instances; %d watchers × %d rounds on a %d-instance service; heartbeat %d instances / %d services every %s (TTL %s), window %s; etcd %d leases; memory %d instances / %d services\n\n",
		b.o.clients, b.o.duration, b.o.warmup, b.o.queryInstances, b.o.watchers, b.o.watchRounds, b.o.watchInstances,
		b.o.hbInstances, b.o.hbServices, b.o.hbInterval, b.o.hbTTL, b.o.hbWindow, b.o.etcdLeases, b.o.memInstances, b.o.memServices)
	sb.WriteString("| scenario | metric | roster | etcd | roster/etcd | target | met |\n")
	sb.WriteString("|---|---|--:|--:|--:|---|---|\n")
	for _, r := range b.rows {
		ratio := ""
		if r.ratio && !math.IsNaN(r.roster) && !math.IsNaN(r.etcd) && r.etcd != 0 {
			ratio = fmt.Sprintf("%.2f×", r.roster/r.etcd)
		}
		target, met := "", ""
		if r.goal != nil {
			target = r.goal.String()
			if r.unit != "" {
				target += " " + r.unit
			}
			met = r.goal.met(r)
			if b.o.smoke {
				met = "(smoke)"
			}
		}
		fmt.Fprintf(&sb, "| %s | %s | %s | %s | %s | %s | %s |\n", r.scenario, r.metric+unitSuffix(r.unit),
			fmtNum(r.roster), fmtNum(r.etcd), ratio, target, met)
	}
	if len(b.notes) > 0 {
		sb.WriteString("\nNotes:\n\n")
		for _, n := range b.notes {
			fmt.Fprintf(&sb, "- %s\n", n)
		}
	}
	return sb.String()
}

func unitSuffix(u string) string {
	if u == "" {
		return ""
	}
	return " (" + u + ")"
}

var nan = math.NaN()
