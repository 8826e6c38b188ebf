package health

import (
	"context"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/rosterhq/roster/internal/registry"
)

// maxGRPCMessage bounds the health responses a grpc check accepts.
const maxGRPCMessage = 4 << 10

// grpcProber calls the standard gRPC health service (grpc.health.v1.Health
// Check) over one client connection kept for the life of the check:
// SERVING is passing, any other answer or error critical. The target is
// host:port or host:port/service; no service asks about the server as a
// whole. The connection is plaintext.
type grpcProber struct {
	target  string
	service string
	conn    *grpc.ClientConn // nil when the target could not be used
	err     error            // why conn is nil
}

func newGRPCProber(target string, interval, timeout time.Duration) *grpcProber {
	hostport, service, _ := strings.Cut(target, "/")
	p := &grpcProber{target: target, service: service}
	if interval <= 0 {
		interval = registry.DefaultCheckInterval
	}
	if timeout <= 0 {
		timeout = min(registry.DefaultCheckTimeout, interval)
	}
	bo := backoff.DefaultConfig
	// Reconnect at least once per interval, so a server that comes back
	// is seen by the next run rather than after gRPC's 2-minute backoff.
	bo.BaseDelay = min(interval, time.Second)
	bo.MaxDelay = interval
	// passthrough: the dialer resolves the host at each connect, as the
	// http and tcp checks do.
	p.conn, p.err = grpc.NewClient("passthrough:///"+hostport,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithUserAgent(userAgent),
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: bo, MinConnectTimeout: timeout}),
		grpc.WithDisableRetry(),
		grpc.WithDisableServiceConfig(),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxGRPCMessage)),
	)
	return p
}

func (p *grpcProber) close() {
	if p.conn != nil {
		_ = p.conn.Close()
	}
}

func (p *grpcProber) probe(ctx context.Context) result {
	prefix := "gRPC health check " + p.target + ": "
	if p.conn == nil {
		return result{registry.Critical, prefix + p.err.Error()}
	}
	resp, err := healthpb.NewHealthClient(p.conn).Check(ctx, &healthpb.HealthCheckRequest{Service: p.service})
	if err != nil {
		st := status.Convert(err)
		if st.Code() == codes.DeadlineExceeded && ctx.Err() != nil {
			return result{registry.Critical, prefix + "timed out"}
		}
		return result{registry.Critical, prefix + st.Code().String() + ": " + truncate(st.Message(), maxBodyOutput)}
	}
	s := resp.GetStatus()
	if s == healthpb.HealthCheckResponse_SERVING {
		return result{registry.Passing, prefix + s.String()}
	}
	return result{registry.Critical, prefix + s.String()}
}

// truncate cuts s to at most n bytes, at a rune boundary, marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "..."
}
