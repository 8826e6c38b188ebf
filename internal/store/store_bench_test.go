package store

import (
	"fmt"
	"testing"
	"time"

	"github.com/rosterhq/roster/internal/registry"
)

func benchInstance(svc string, i int) *registry.Instance {
	return &registry.Instance{
		Service: svc, ID: fmt.Sprintf("%s-%06d", svc, i), Address: "10.0.0.1", Port: 8080,
		Tags: []string{"v1"}, Meta: map[string]string{"version": "v1"}, Weight: 1, Health: registry.Passing,
		Checks: []registry.Check{{ID: "ttl", Type: registry.CheckTTL, TTL: registry.Duration(10 * time.Second), Status: registry.Passing}},
	}
}

func benchEntry(b *testing.B, idx uint64, in *registry.Instance) Entry {
	data, err := Encode(&registry.RegisterOp{Instance: in, At: time.Now()})
	if err != nil {
		b.Fatal(err)
	}
	return Entry{Index: idx, Data: data}
}

// BenchmarkApplyBatch applies batches of 64 new registrations, as the log
// hands them over under load.
func BenchmarkApplyBatch(b *testing.B) {
	s := New()
	idx := uint64(1)
	n := 0
	b.ReportAllocs()
	for b.Loop() {
		batch := make([]Entry, 64)
		for j := range batch {
			idx++
			n++
			batch[j] = benchEntry(b, idx, benchInstance(fmt.Sprint("svc", n%1000), n))
		}
		s.ApplyBatch(batch)
	}
	b.ReportMetric(float64(b.N*64)/b.Elapsed().Seconds(), "entries/s")
}

// BenchmarkInstances reads a 100-instance service.
func BenchmarkInstances(b *testing.B) {
	s := New()
	var batch []Entry
	for i := range 100 {
		batch = append(batch, benchEntry(b, uint64(i+2), benchInstance("web", i)))
	}
	s.ApplyBatch(batch)
	b.ReportAllocs()
	for b.Loop() {
		if _, got := s.Instances("web"); len(got) != 100 {
			b.Fatal(len(got))
		}
	}
}
