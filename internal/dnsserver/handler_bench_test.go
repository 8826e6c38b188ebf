package dnsserver

import (
	"context"
	"fmt"
	"net"
	"testing"

	"github.com/miekg/dns"

	"github.com/rosterhq/roster/internal/registry"
)

// benchWriter is a dns.ResponseWriter that packs the answer, as the
// server does, and drops it.
type benchWriter struct{ buf []byte }

func (w *benchWriter) LocalAddr() net.Addr {
	return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8600}
}
func (w *benchWriter) RemoteAddr() net.Addr {
	return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
}
func (w *benchWriter) WriteMsg(m *dns.Msg) error {
	b, err := m.PackBuffer(w.buf)
	w.buf = b[:cap(b)]
	return err
}
func (w *benchWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *benchWriter) Close() error                { return nil }
func (w *benchWriter) TsigStatus() error           { return nil }
func (w *benchWriter) TsigTimersOnly(bool)         {}
func (w *benchWriter) Hijack()                     {}

// BenchmarkServeDNS answers the bench workload's questions in process:
// a 5-instance service, A and SRV, packed for UDP.
func BenchmarkServeDNS(b *testing.B) {
	reg := newRegistry()
	for i := range 5 {
		register(b, reg, inst{Instance: registry.Instance{Service: "web", ID: fmt.Sprintf("web-%d", i), Address: fmt.Sprintf("10.0.0.%d", i+1), Port: 8080}})
	}
	h := newHandler(b, reg)
	for _, qt := range []uint16{dns.TypeA, dns.TypeSRV} {
		b.Run(dns.TypeToString[qt], func(b *testing.B) {
			req := question("web.service.roster.", qt)
			w := &benchWriter{}
			b.ReportAllocs()
			for b.Loop() {
				h.ServeDNS(w, req)
			}
		})
	}
	b.Run("parse", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			parseName("v2.web.service.eu-1a.roster.", h.domains)
		}
	})
	b.Run("big-SRV-tcp", func(b *testing.B) {
		big := newHandler(b, bigService(b, 1000))
		req := question("big.service.roster.", dns.TypeSRV)
		b.ReportAllocs()
		for b.Loop() {
			big.answer(context.Background(), req, tcpClient)
		}
	})
}
