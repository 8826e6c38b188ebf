package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/rosterhq/roster/internal/testutil"
)

// events is an ordered record of what the fake components did.
type events struct {
	mu  sync.Mutex
	all []string
}

func (e *events) add(s string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.all = append(e.all, s)
}

func (e *events) list() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.all...)
}

// fake is a runner that fails at once with failAtStart, or else runs
// until its context ends, records "stop NAME" and returns failAtStop.
type fake struct {
	name        string
	ev          *events
	started     chan struct{}
	failAtStart error
	failAtStop  error
}

func (f *fake) Run(ctx context.Context) error {
	close(f.started)
	if f.failAtStart != nil {
		return f.failAtStart
	}
	<-ctx.Done()
	f.ev.add("stop " + f.name)
	return f.failAtStop
}

// syncBuffer is a log destination safe for the runner's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestRunComponents(t *testing.T) {
	errBoom := errors.New("boom")
	errClose := errors.New("close failed")
	type spec struct {
		name                    string
		failure                 onFailure
		failAtStart, failAtStop error
	}
	tests := []struct {
		name  string
		comps []spec
		// cancel: the test cancels the context once every component
		// has started; otherwise a failure must end the run.
		cancel     bool
		wantEvents []string
		wantErr    string // "" for nil
		wantLog    []string
	}{
		{
			name:       "stops in reverse when ctx ends",
			comps:      []spec{{name: "a"}, {name: "b"}, {name: "c"}},
			cancel:     true,
			wantEvents: []string{"stopping", "stop c", "stop b", "stop a"},
		},
		{
			name:       "a failure that stops the agent stops every other component",
			comps:      []spec{{name: "a"}, {name: "b", failAtStart: errBoom}, {name: "c"}},
			wantEvents: []string{"stopping", "stop c", "stop a"},
			wantErr:    "b: boom",
		},
		{
			name:       "a failure to carry on from is logged",
			comps:      []spec{{name: "a"}, {name: "b", failure: carryOn, failAtStart: errBoom}, {name: "c"}},
			cancel:     true,
			wantEvents: []string{"stopping", "stop c", "stop a"},
			wantLog:    []string{`msg="component failed" component=b err=boom`},
		},
		{
			name:       "failures while stopping are joined after the first",
			comps:      []spec{{name: "a", failAtStop: errClose}, {name: "b"}, {name: "c", failAtStart: errBoom}},
			wantEvents: []string{"stopping", "stop b", "stop a"},
			wantErr:    "c: boom\na: close failed",
		},
		{
			name:       "a failure while stopping after a clean end",
			comps:      []spec{{name: "a", failAtStop: errClose}, {name: "b", failure: carryOn, failAtStop: errClose}},
			cancel:     true,
			wantEvents: []string{"stopping", "stop b", "stop a"},
			wantErr:    "a: close failed",
			wantLog:    []string{`msg="component failed" component=b err="close failed"`},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(testutil.Context(t, 10*time.Second))
			defer cancel()
			var logs syncBuffer
			log := slog.New(slog.NewTextHandler(io.MultiWriter(&logs, t.Output()), nil))
			ev := &events{}
			var comps []component
			var fakes []*fake
			for _, s := range tc.comps {
				f := &fake{name: s.name, ev: ev, started: make(chan struct{}), failAtStart: s.failAtStart, failAtStop: s.failAtStop}
				fakes = append(fakes, f)
				comps = append(comps, component{name: s.name, run: f, failure: s.failure})
			}
			if tc.cancel {
				go func() {
					for _, f := range fakes {
						<-f.started
					}
					cancel()
				}()
			}
			err := runComponents(ctx, log, comps, func() { ev.add("stopping") })
			if !tc.cancel && ctx.Err() != nil {
				t.Fatalf("the run ended with its context, not with a failure: %v", err)
			}
			gotErr := ""
			if err != nil {
				gotErr = err.Error()
			}
			if gotErr != tc.wantErr {
				t.Errorf("error = %q, want %q", gotErr, tc.wantErr)
			}
			if diff := cmp.Diff(tc.wantEvents, ev.list()); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
			for _, want := range tc.wantLog {
				if !strings.Contains(logs.String(), want) {
					t.Errorf("log lacks %s:\n%s", want, logs.String())
				}
			}
		})
	}
}

// TestRunComponentsWrapsErrors: a failure keeps its chain under the
// component's name.
func TestRunComponentsWrapsErrors(t *testing.T) {
	ctx := testutil.Context(t, 10*time.Second)
	f := &fake{name: "dns", ev: &events{}, started: make(chan struct{}), failAtStart: net.ErrClosed}
	err := runComponents(ctx, slog.New(slog.DiscardHandler), []component{{name: "dns", run: f}}, nil)
	if !errors.Is(err, net.ErrClosed) || err.Error() != "dns: "+net.ErrClosed.Error() {
		t.Fatalf("error = %v, want dns: %v", err, net.ErrClosed)
	}
}

// TestRunComponentsListening: the listening lines come in the list's
// order, before any component runs.
func TestRunComponentsListening(t *testing.T) {
	ctx, cancel := context.WithCancel(testutil.Context(t, 10*time.Second))
	cancel()
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{ReplaceAttr: dropTime}))
	ev := &events{}
	comps := []component{
		{name: "log", run: &fake{name: "log", ev: ev, started: make(chan struct{})}},
		{name: "dns", run: &fake{name: "dns", ev: ev, started: make(chan struct{})}, listening: []any{"addr", "127.0.0.1:53"}},
		{name: "http api", run: &fake{name: "http", ev: ev, started: make(chan struct{})}, listening: []any{"addr", "127.0.0.1:8500", "node", "n1"}},
	}
	if err := runComponents(ctx, log, comps, nil); err != nil {
		t.Fatal(err)
	}
	want := "level=INFO msg=\"dns listening\" addr=127.0.0.1:53\n" +
		"level=INFO msg=\"http api listening\" addr=127.0.0.1:8500 node=n1\n"
	if diff := cmp.Diff(want, logs.String()); diff != "" {
		t.Errorf("logs (-want +got):\n%s", diff)
	}
}

func dropTime(_ []string, a slog.Attr) slog.Attr {
	if a.Key == slog.TimeKey {
		return slog.Attr{}
	}
	return a
}

func TestClosersUnwindInReverse(t *testing.T) {
	var got []string
	var undo closers
	for _, name := range []string{"node", "http", "dns"} {
		undo.push(func() error { got = append(got, name); return fmt.Errorf("%s failed", name) })
	}
	undo.close()
	if diff := cmp.Diff([]string{"dns", "http", "node"}, got); diff != "" {
		t.Errorf("close order (-want +got):\n%s", diff)
	}
}

func TestShutdownGraceIsShared(t *testing.T) {
	g := &shutdownGrace{d: time.Hour}
	first, cancel1 := g.context()
	defer cancel1()
	second, cancel2 := g.context()
	defer cancel2()
	d1, _ := first.Deadline()
	d2, ok := second.Deadline()
	if !ok || !d1.Equal(d2) {
		t.Fatalf("deadlines %v and %v, want one", d1, d2)
	}
}

// TestHTTPServerShutdown: once its context ends, the server stops
// accepting and lets a request in flight finish within the grace period;
// past it, the request's connection is closed. Run returns nil either way.
func TestHTTPServerShutdown(t *testing.T) {
	tests := []struct {
		name     string
		grace    time.Duration
		finishes bool // the request finishes within the grace period
	}{
		{name: "in-flight request finishes", grace: time.Minute, finishes: true},
		{name: "past the grace period", grace: 50 * time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testutil.Context(t, 20*time.Second)
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			entered, release := make(chan struct{}), make(chan struct{})
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				close(entered)
				select {
				case <-release:
				case <-ctx.Done():
				}
				_, _ = io.WriteString(w, "done")
			})
			log := slog.New(slog.NewTextHandler(t.Output(), nil))
			hs := newHTTPServer(ln, h, &shutdownGrace{d: tc.grace}, log)
			runCtx, stop := context.WithCancel(ctx)
			defer stop()
			ran := make(chan error, 1)
			go func() { ran <- hs.Run(runCtx) }()

			tr := &http.Transport{}
			defer tr.CloseIdleConnections()
			got := make(chan error, 1)
			go func() {
				req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+hs.Addr()+"/", nil)
				resp, err := tr.RoundTrip(req)
				if err == nil {
					var b []byte
					b, err = io.ReadAll(resp.Body)
					resp.Body.Close()
					if err == nil && string(b) != "done" {
						err = fmt.Errorf("body %q", b)
					}
				}
				got <- err
			}()
			<-entered
			stop()
			testutil.WaitFor(t, ctx, "the listener closed", func() bool {
				c, err := net.Dial("tcp", hs.Addr())
				if err == nil {
					c.Close()
				}
				return err != nil
			})
			if tc.finishes {
				close(release)
			}
			if err := <-ran; err != nil {
				t.Errorf("Run: %v", err)
			}
			err = <-got
			if tc.finishes && err != nil {
				t.Errorf("request in flight: %v, want its answer", err)
			}
			if !tc.finishes && err == nil {
				t.Error("request past the grace period was answered, want its connection closed")
			}
			if !tc.finishes {
				close(release)
			}
		})
	}
}
