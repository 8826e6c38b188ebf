package health

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// startScheduler runs a scheduler over reg until the returned stop is
// called (or the test ends); stop waits for Run to return nil.
func startScheduler(t *testing.T, ctx context.Context, reg Registry) (*Scheduler, func()) {
	t.Helper()
	return startSchedulerConfig(t, ctx, Config{Registry: reg, Metrics: prometheus.NewRegistry()})
}

// startSchedulerConfig is startScheduler with a given Config; a nil Logger
// logs to the test output.
func startSchedulerConfig(t *testing.T, ctx context.Context, cfg Config) (*Scheduler, func()) {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	s := New(cfg)
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Run(rctx) }()
	stop := sync.OnceFunc(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run returned %v, want nil", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Run did not return after cancel")
		}
	})
	t.Cleanup(stop)
	return s, stop
}

// running reads the gauge of running checks of a type.
func running(s *Scheduler, typ string) float64 {
	var m dto.Metric
	_ = s.metrics.running.WithLabelValues(typ).Write(&m)
	return m.GetGauge().GetValue()
}

// runs reads the counter of check runs of a type and result.
func runs(s *Scheduler, typ, res string) float64 {
	var m dto.Metric
	_ = s.metrics.runs.WithLabelValues(typ, res).Write(&m)
	return m.GetCounter().GetValue()
}

// scriptServer answers with the status codes of its script, one per
// request, then with the last code it was given. Each body differs
// ("response N"), so outputs change at every run.
type scriptServer struct {
	*httptest.Server
	mu     sync.Mutex
	queue  []int
	last   int
	served int
}

func newScriptServer(t *testing.T, script ...int) *scriptServer {
	t.Helper()
	s := &scriptServer{queue: script, last: http.StatusOK}
	if len(script) > 0 {
		s.last = script[len(script)-1]
	}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		code := s.last
		if len(s.queue) > 0 {
			code, s.queue = s.queue[0], s.queue[1:]
		}
		s.served++
		n := s.served
		s.mu.Unlock()
		w.WriteHeader(code)
		fmt.Fprintf(w, "response %d", n)
	}))
	t.Cleanup(s.Close)
	return s
}

// set makes the server answer code from now on.
func (s *scriptServer) set(code int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queue, s.last = nil, code
}

func (s *scriptServer) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.served
}

// listen returns a loopback TCP listener closed at the end of the test.
func listen(t *testing.T) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

// startGRPC runs a gRPC server with the standard health service on
// loopback; the overall status ("") is SERVING. It is stopped at the end
// of the test, or earlier by stopGRPC.
func startGRPC(t *testing.T) (string, *health.Server) {
	addr, hs, _ := startGRPCStop(t)
	return addr, hs
}

func startGRPCStop(t *testing.T) (addr string, hs *health.Server, stop func()) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	hs = health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(l)
	}()
	stop = sync.OnceFunc(func() {
		srv.Stop()
		<-done
	})
	t.Cleanup(stop)
	return l.Addr().String(), hs, stop
}
