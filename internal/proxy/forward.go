package proxy

import (
	"io"
	"net"
	"net/http"
	"net/textproto"
	"strings"
	"sync"
	"time"
)

// hopHeaders are dropped between client and instance, both ways (RFC
// 9110, section 7.6.1), with whatever a Connection header names.
var hopHeaders = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
	"Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

// hopHeader reports whether k is hop-by-hop: one of hopHeaders or one of
// tokens (connectionTokens of the Connection header).
func hopHeader(k string, tokens []string) bool {
	for _, h := range hopHeaders {
		if k == h {
			return true
		}
	}
	for _, t := range tokens {
		if t == k {
			return true
		}
	}
	return false
}

// connectionTokens are the header names a Connection header lists.
func connectionTokens(connection []string) []string {
	var tokens []string
	for _, v := range connection {
		for f := range strings.SplitSeq(v, ",") {
			if f = strings.TrimSpace(f); f != "" {
				tokens = append(tokens, textproto.CanonicalMIMEHeaderKey(f))
			}
		}
	}
	return tokens
}

// forward proxies one request that asks for no protocol upgrade (those go
// through httputil.ReverseProxy): it builds the outbound request, sends it
// with send, and copies the answer back, streaming.
func (p *Proxy) forward(w http.ResponseWriter, r *http.Request, st *reqState) {
	out := new(http.Request)
	*out = *r // shares the context, URL (replaced below) and body
	u := *r.URL
	u.Scheme, u.Host = "http", st.up.service
	if rt := st.up.route; rt != nil && rt.StripPrefix {
		if u.RawPath != "" && hasPathPrefix(u.RawPath, rt.PathPrefix) {
			u.RawPath = stripPrefix(u.RawPath, rt.PathPrefix)
		} else {
			u.RawPath = ""
		}
		u.Path = stripPrefix(u.Path, rt.PathPrefix)
	}
	out.URL = &u
	out.RequestURI = ""
	out.Close = false
	if r.ContentLength == 0 {
		out.Body = nil // nothing to send, and nothing to replay
	}
	out.Header = outboundHeader(r)
	resp, err := p.send(out, st)
	if err != nil {
		st.err = err
		p.answerError(w, r, err)
		return
	}
	defer resp.Body.Close()
	h := w.Header()
	conn := connectionTokens(resp.Header["Connection"])
	for k, vv := range resp.Header {
		if !hopHeader(k, conn) {
			h[k] = vv
		}
	}
	if len(resp.Trailer) > 0 {
		keys := make([]string, 0, len(resp.Trailer))
		for k := range resp.Trailer {
			keys = append(keys, k)
		}
		h["Trailer"] = []string{strings.Join(keys, ", ")}
	}
	w.WriteHeader(resp.StatusCode)
	if err := p.copyBody(w, resp); err != nil {
		// The instance broke off: make the client see a broken answer,
		// not a complete one.
		st.err = err
		panic(http.ErrAbortHandler)
	}
	for k, vv := range resp.Trailer {
		h[k] = vv
	}
}

// outboundHeader is the request's header without hop-by-hop fields, with
// X-Forwarded-For extended by the client's address and X-Forwarded-Host
// and -Proto set. Values are shared with the inbound header, not copied.
func outboundHeader(r *http.Request) http.Header {
	in := r.Header
	h := make(http.Header, len(in)+3)
	conn := connectionTokens(in["Connection"])
	for k, vv := range in {
		switch k {
		case "Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto":
			continue
		}
		if !hopHeader(k, conn) {
			h[k] = vv
		}
	}
	// Tell instances that trailers are welcome when the client said so.
	for _, v := range in["Te"] {
		if strings.Contains(strings.ToLower(v), "trailers") {
			h["Te"] = []string{"trailers"}
			break
		}
	}
	if _, ok := h["User-Agent"]; !ok {
		h["User-Agent"] = []string{""} // do not send a default one
	}
	if ip, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		if prior := in["X-Forwarded-For"]; len(prior) > 0 {
			ip = strings.Join(prior, ", ") + ", " + ip
		}
		h["X-Forwarded-For"] = []string{ip}
	}
	h["X-Forwarded-Host"] = []string{r.Host}
	if r.TLS != nil {
		h["X-Forwarded-Proto"] = protoHTTPS
	} else {
		h["X-Forwarded-Proto"] = protoHTTP
	}
	return h
}

var (
	protoHTTP  = []string{"http"}
	protoHTTPS = []string{"https"}
)

// copyBody copies the answer's body to the client. A streamed answer
// (unknown length, or server-sent events) is flushed after every write;
// one of known length is flushed when a write leaves it unfinished for
// FlushInterval, so that a fast answer costs one write and a slow one
// still reaches the client as it comes. It returns a read error of the
// instance's body; a write error (the client left) ends the copy quietly.
func (p *Proxy) copyBody(w http.ResponseWriter, resp *http.Response) error {
	rc := http.NewResponseController(w)
	every := p.cfg.FlushInterval < 0 || resp.ContentLength < 0
	if !every {
		const sse = "text/event-stream"
		ct := resp.Header.Get("Content-Type")
		every = len(ct) >= len(sse) && strings.EqualFold(ct[:len(sse)], sse)
	}
	bufp := buffers.Get().(*[]byte)
	defer buffers.Put(bufp)
	buf := *bufp
	var (
		written int64
		lw      *lazyFlusher
	)
	defer func() {
		if lw != nil {
			lw.stop()
		}
	}()
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			var werr error
			if lw != nil {
				werr = lw.write(buf[:n])
			} else {
				_, werr = w.Write(buf[:n])
			}
			if werr != nil {
				return nil
			}
			written += int64(n)
			switch {
			case every:
				_ = rc.Flush()
			case lw == nil && written < resp.ContentLength:
				// Unfinished: flush if nothing more comes soon.
				lw = &lazyFlusher{w: w, flush: rc.Flush, interval: p.cfg.FlushInterval}
				lw.t = time.AfterFunc(lw.interval, lw.timeout)
			}
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return rerr
		}
	}
}

// lazyFlusher flushes what was written when no write came for interval.
type lazyFlusher struct {
	mu       sync.Mutex
	w        io.Writer
	flush    func() error
	interval time.Duration
	t        *time.Timer
	stopped  bool
}

func (l *lazyFlusher) write(b []byte) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, err := l.w.Write(b)
	l.t.Reset(l.interval)
	return err
}

// timeout flushes what the last writes left in the buffer.
func (l *lazyFlusher) timeout() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped {
		return
	}
	_ = l.flush()
}

func (l *lazyFlusher) stop() {
	l.mu.Lock()
	l.stopped = true
	l.mu.Unlock()
	l.t.Stop()
}
