package h1

import (
	"bufio"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// respWriter is the http.ResponseWriter of Server: it writes the status
// line and header at the first Write (or WriteHeader), frames the body
// with the handler's Content-Length or else chunked (HTTP/1.1) or by
// closing (HTTP/1.0), and supports Flush and Hijack.
type respWriter struct {
	c     net.Conn
	br    *bufio.Reader
	bw    *bufio.Writer
	req   *http.Request
	watch *clientWatch // nil for a request with a body

	header        http.Header
	wroteHeader   bool
	status        int
	noBody        bool
	chunked       bool
	contentLength int64 // -1: unknown
	written       int64
	close         bool // close the connection after this answer
	hijacked      bool
	err           error
}

func (w *respWriter) Header() http.Header {
	if w.header == nil {
		w.header = make(http.Header, 8)
	}
	return w.header
}

func (w *respWriter) WriteHeader(code int) {
	if w.wroteHeader || w.hijacked {
		return
	}
	h := w.Header()
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		w.writeHead(code, h) // informational: the real answer follows
		clear(h)
		return
	}
	w.wroteHeader, w.status = true, code
	w.noBody = w.req.Method == http.MethodHead || code == http.StatusNoContent || code == http.StatusNotModified ||
		code == http.StatusSwitchingProtocols
	if v := h["Content-Length"]; len(v) > 0 {
		// One valid length (or the same one repeated), else none: the
		// body is then chunked, never framed two ways.
		n, err := strconv.ParseUint(v[0], 10, 63)
		if err == nil && !slices.ContainsFunc(v[1:], func(s string) bool { return s != v[0] }) {
			w.contentLength = int64(n)
			h["Content-Length"] = v[:1]
		} else {
			delete(h, "Content-Length")
		}
	}
	delete(h, "Transfer-Encoding")
	if w.req.Close || !w.req.ProtoAtLeast(1, 1) && !hasToken(w.req.Header["Connection"], "keep-alive") {
		w.close = true
	}
	if !w.noBody && w.contentLength < 0 {
		if w.req.ProtoAtLeast(1, 1) {
			w.chunked = true
			h["Transfer-Encoding"] = chunkedTE
		} else {
			w.close = true // the end of the connection ends the body
		}
	}
	switch {
	case code == http.StatusSwitchingProtocols:
	case w.close:
		h["Connection"] = connClose
	case !w.req.ProtoAtLeast(1, 1):
		h["Connection"] = connKeepAlive
	}
	w.writeHead(code, h)
}

var (
	chunkedTE     = []string{"chunked"}
	connClose     = []string{"close"}
	connKeepAlive = []string{"keep-alive"}
)

func hasToken(vv []string, token string) bool {
	for _, v := range vv {
		for f := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(f), token) {
				return true
			}
		}
	}
	return false
}

// writeHead writes a status line and header fields (trailer fields,
// named with http.TrailerPrefix, wait for the end of the body).
func (w *respWriter) writeHead(code int, h http.Header) {
	bw := w.bw
	bw.WriteString("HTTP/1.1 ")
	bw.WriteString(strconv.Itoa(code))
	bw.WriteByte(' ')
	text := http.StatusText(code)
	if text == "" {
		text = "status code " + strconv.Itoa(code)
	}
	bw.WriteString(text)
	bw.WriteString("\r\n")
	writeFields(bw, h, false)
	bw.WriteString("\r\n")
	if code < 200 || code == http.StatusSwitchingProtocols {
		w.err = bw.Flush()
	}
}

// writeFields writes header (or, with trailers, trailer) fields, leaving
// out values that would break the message.
func writeFields(bw *bufio.Writer, h http.Header, trailers bool) {
	for k, vv := range h {
		if strings.HasPrefix(k, http.TrailerPrefix) != trailers {
			continue
		}
		name := strings.TrimPrefix(k, http.TrailerPrefix)
		for _, v := range vv {
			if strings.ContainsAny(v, "\r\n") || strings.ContainsAny(name, "\r\n: ") {
				continue
			}
			bw.WriteString(name)
			bw.WriteString(": ")
			bw.WriteString(v)
			bw.WriteString("\r\n")
		}
	}
}

func (w *respWriter) Write(b []byte) (int, error) {
	if w.hijacked {
		return 0, http.ErrHijacked
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.err != nil {
		return 0, w.err
	}
	if w.noBody {
		return 0, http.ErrBodyNotAllowed
	}
	if w.contentLength >= 0 && w.written+int64(len(b)) > w.contentLength {
		return 0, http.ErrContentLength
	}
	if len(b) == 0 {
		return 0, nil
	}
	if w.chunked {
		w.bw.WriteString(strconv.FormatInt(int64(len(b)), 16))
		w.bw.WriteString("\r\n")
	}
	n, err := w.bw.Write(b)
	if w.chunked && err == nil {
		_, err = w.bw.WriteString("\r\n")
	}
	w.written += int64(n)
	if err != nil {
		w.err = err
	}
	return n, err
}

// FlushError sends what is buffered (http.ResponseController's Flush).
func (w *respWriter) FlushError() error {
	if w.hijacked {
		return http.ErrHijacked
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.err != nil {
		return w.err
	}
	w.err = w.bw.Flush()
	return w.err
}

// Flush implements http.Flusher.
func (w *respWriter) Flush() { _ = w.FlushError() }

// Hijack hands the connection over (protocol upgrades).
func (w *respWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.hijacked {
		return nil, nil, http.ErrHijacked
	}
	if w.watch != nil {
		w.watch.stop()
	}
	if err := w.bw.Flush(); err != nil {
		return nil, nil, err
	}
	w.hijacked = true
	_ = w.c.SetDeadline(time.Time{})
	return w.c, bufio.NewReadWriter(w.br, w.bw), nil
}

// finish ends the answer: the header if nothing was written, the last
// chunk and the trailers, and a flush.
func (w *respWriter) finish() {
	if !w.wroteHeader {
		w.Header()["Content-Length"] = []string{"0"}
		w.WriteHeader(http.StatusOK)
	}
	if w.chunked {
		w.bw.WriteString("0\r\n")
		if names := w.header["Trailer"]; len(names) > 0 {
			t := http.Header{}
			for _, v := range names {
				for f := range strings.SplitSeq(v, ",") {
					k := http.CanonicalHeaderKey(strings.TrimSpace(f))
					if vv := w.header[k]; len(vv) > 0 {
						t[http.TrailerPrefix+k] = vv
					}
				}
			}
			writeFields(w.bw, t, true)
		}
		writeFields(w.bw, w.header, true)
		w.bw.WriteString("\r\n")
	}
	if !w.noBody && w.contentLength >= 0 && w.written != w.contentLength {
		w.close = true // the client would read the next answer as this one's body
	}
	if err := w.bw.Flush(); err != nil || w.err != nil {
		w.close = true
	}
}
