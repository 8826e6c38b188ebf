package health

import (
	"context"
	"net"

	"github.com/rosterhq/roster/internal/registry"
)

// tcpProber connects to host:port: a connection made is passing, anything
// else critical. The connection is closed at once.
type tcpProber struct {
	dialer *net.Dialer
	target string
}

func (p *tcpProber) close() {}

func (p *tcpProber) probe(ctx context.Context) result {
	prefix := "TCP connect " + p.target + ": "
	conn, err := p.dialer.DialContext(ctx, "tcp", p.target)
	if err != nil {
		return result{registry.Critical, prefix + errText(ctx, err)}
	}
	_ = conn.Close()
	return result{registry.Passing, prefix + "success"}
}
