package store

import (
	"fmt"
	"runtime"
	"testing"
)

// BenchmarkMemPerInstance applies 100,000 registrations (1,000 services of
// 100 instances, each with a TTL check, a tag and a meta entry) in batches
// of 64 and reports the live heap they leave per instance.
func BenchmarkMemPerInstance(b *testing.B) {
	const services, perService, batchSize = 1000, 100, 64
	const total = services * perService
	for b.Loop() {
		// Encode every entry first, and keep them alive to the end, so that
		// the heap delta is only what the store keeps.
		entries := make([]Entry, 0, total)
		for i := range total {
			in := benchInstance(fmt.Sprint("svc", i%services), i)
			entries = append(entries, benchEntry(b, uint64(i+2), in))
		}
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		s := New()
		for i := 0; i < total; i += batchSize {
			s.ApplyBatch(entries[i:min(i+batchSize, total)])
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		runtime.KeepAlive(entries)
		if st := s.Stats(); st.Instances != total {
			b.Fatalf("%d instances, want %d", st.Instances, total)
		}
		b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/total, "live-B/instance")
		runtime.KeepAlive(s)
	}
}
