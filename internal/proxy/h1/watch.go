package h1

import (
	"bufio"
	"sync"
	"time"
)

// watchAfter is how long a request without a body may wait before the
// server starts watching its connection for the client leaving.
const watchAfter = 100 * time.Millisecond

// clientWatch notices a client that closes its connection while its
// request (one without a body, so nothing else reads the connection)
// is still being answered, and then cancels the requests' context, which
// aborts what the handler does for it (the proxy's request to an
// instance). It starts only for requests slower than watchAfter: a read
// in the background costs more than most requests.
type clientWatch struct {
	sc      *srvConn
	br      *bufio.Reader
	t       *time.Timer
	mu      sync.Mutex
	stopped bool
	started bool
	done    chan struct{}
	gone    bool // set before done is closed
	once    sync.Once
	alive   bool // stop's answer
}

func (s *Server) watchClient(sc *srvConn, br *bufio.Reader) *clientWatch {
	w := &clientWatch{sc: sc, br: br, done: make(chan struct{})}
	w.t = time.AfterFunc(watchAfter, w.watch)
	return w
}

// watch runs in the timer's goroutine: it waits for a byte or the end of
// the connection; bytes (a pipelined request) stay in br for the loop.
func (w *clientWatch) watch() {
	w.mu.Lock()
	if w.stopped {
		w.mu.Unlock()
		return
	}
	w.started = true
	w.mu.Unlock()
	defer close(w.done)
	if _, err := w.br.Peek(1); err != nil && !isTimeout(err) {
		w.gone = true
		w.sc.cancel()
	}
}

// stop ends the watch once the answer is done (or the connection is
// hijacked: nothing may read it behind the new owner's back); it reports
// whether the client is still there.
func (w *clientWatch) stop() bool {
	w.once.Do(func() {
		w.mu.Lock()
		w.stopped = true
		started := w.started
		w.mu.Unlock()
		w.t.Stop()
		w.alive = true
		if !started {
			return
		}
		_ = w.sc.SetReadDeadline(time.Unix(1, 0)) // wake the watch's read
		<-w.done
		_ = w.sc.SetReadDeadline(time.Time{})
		w.alive = !w.gone
	})
	return w.alive
}
