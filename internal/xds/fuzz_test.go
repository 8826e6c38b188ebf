package xds

import (
	"fmt"
	"testing"
	"time"

	"github.com/rosterhq/roster/internal/registry"
)

// FuzzLoadAssignment builds load assignments from arbitrary instance sets
// and checks what Envoy's validation and gRPC's xDS client require: valid
// fields, priorities 0..n-1 without gaps, one locality per priority,
// region and zone, no address twice, locality weights that are the sums
// of their endpoints' weights, and no critical instance served.
func FuzzLoadAssignment(f *testing.F) {
	f.Add([]byte{0, 1, 80, 0, 1, 0, 0, 2, 80, 0, 1, 1, 1, 1, 80, 3, 7, 2})
	f.Add([]byte{1, 1, 80, 9, 100, 0x13, 2, 1, 80, 9, 100, 0x21, 3, 4, 81, 200, 50, 0x0c})
	f.Add([]byte{2})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		modes := []WarningMode{WarningHealthy, WarningDegraded, WarningOmit}
		o := buildOptions{warning: modes[int(data[0])%3], connectTimeout: time.Second}
		var ins []*registry.Instance
		for i := 1; i+6 <= len(data) && len(ins) < 300; i += 6 {
			d := data[i : i+6]
			in := &registry.Instance{
				Service:  "pay",
				ID:       fmt.Sprint(len(ins)),
				Address:  fmt.Sprintf("10.0.0.%d", d[0]%8),
				Port:     int(d[1]%4) + 80,
				Priority: int(d[2]) * 257,
				Weight:   int(d[3])%100 + 1,
				Health:   []registry.Health{registry.Passing, registry.Warning, registry.Critical}[d[4]%3],
				Zone:     []string{"", "a", "b"}[d[5]%3],
				Region:   []string{"", "r"}[d[5]>>2%2],
				Canary:   d[5]&0x10 != 0,
			}
			if d[5]&0x20 != 0 {
				in.Address = "host.example"
			}
			ins = append(ins, in)
		}
		cla := loadAssignment("pay", ins, o)
		if err := cla.ValidateAll(); err != nil {
			t.Fatalf("Envoy's validation: %v", err)
		}
		byID := map[string]*registry.Instance{}
		for _, in := range ins {
			byID[in.ID] = in
		}
		type loc struct {
			p          uint32
			region, zn string
		}
		locs := map[loc]bool{}
		addrs := map[string]bool{}
		maxPrio := -1
		for _, l := range cla.GetEndpoints() {
			k := loc{l.GetPriority(), l.GetLocality().GetRegion(), l.GetLocality().GetZone()}
			if locs[k] {
				t.Fatalf("locality %v twice", k)
			}
			locs[k] = true
			maxPrio = max(maxPrio, int(k.p))
			var sum uint32
			for _, e := range l.GetLbEndpoints() {
				sa := e.GetEndpoint().GetAddress().GetSocketAddress()
				a := fmt.Sprintf("%s:%d", sa.GetAddress(), sa.GetPortValue())
				if addrs[a] {
					t.Fatalf("address %s twice", a)
				}
				addrs[a] = true
				w := e.GetLoadBalancingWeight().GetValue()
				if w < 1 {
					t.Fatalf("endpoint %s weight %d", a, w)
				}
				sum += w
				in := byID[e.GetMetadata().GetFilterMetadata()[rosterNamespace].GetFields()["id"].GetStringValue()]
				if in == nil || in.Health == registry.Critical || (in.Health == registry.Warning && o.warning == WarningOmit) {
					t.Fatalf("endpoint %s served from %+v", a, in)
				}
			}
			if sum == 0 || l.GetLoadBalancingWeight().GetValue() != sum {
				t.Fatalf("locality %v weight %d, endpoints sum to %d", k, l.GetLoadBalancingWeight().GetValue(), sum)
			}
		}
		for p := 0; p <= maxPrio; p++ {
			found := false
			for k := range locs {
				found = found || int(k.p) == p
			}
			if !found {
				t.Fatalf("priority %d missing below %d", p, maxPrio)
			}
		}
	})
}
