package health

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/rosterhq/roster/internal/registry"
)

const (
	// maxBody is how much of a response body an http check reads.
	maxBody = 4 << 10
	// maxBodyOutput is how much of it goes into the check's output.
	maxBodyOutput = 256
	// maxRedirects bounds the redirects an http check follows; only
	// redirects to the same host are followed.
	maxRedirects = 3
	userAgent    = "roster-health-check/1"
)

// newTransport returns the transport shared by every http check: no proxy,
// no kept-alive connections (a check connects once per interval, and a
// held connection would hide a listener that stopped accepting), bounded
// headers.
func newTransport(d *net.Dialer) *http.Transport {
	return &http.Transport{
		Proxy:                  nil,
		DialContext:            d.DialContext,
		DisableKeepAlives:      true,
		DisableCompression:     true,
		MaxResponseHeaderBytes: 64 << 10,
	}
}

// newHTTPClient returns a client over t that follows at most maxRedirects
// redirects, and only to the same host; any other redirect response is the
// check's result (and, not being 2xx, a failure). Timeouts come from each
// request's context.
func newHTTPClient(t *http.Transport) *http.Client {
	return &http.Client{
		Transport: t,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) > maxRedirects || req.URL.Host != via[0].URL.Host {
				return http.ErrUseLastResponse
			}
			return nil
		},
	}
}

// httpProber GETs a URL: 2xx is passing, 429 warning, anything else
// critical.
type httpProber struct {
	client *http.Client
	target string
}

func (p *httpProber) close() {}

func (p *httpProber) probe(ctx context.Context) result {
	shown := p.target
	if u, err := url.Parse(p.target); err == nil {
		shown = u.Redacted()
	}
	prefix := "HTTP GET " + shown + ": "
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.target, nil)
	if err != nil {
		return result{registry.Critical, prefix + err.Error()}
	}
	req.Header.Set("User-Agent", userAgent)
	req.Header.Set("Accept", "text/plain, text/*, */*")
	resp, err := p.client.Do(req)
	if err != nil {
		return result{registry.Critical, prefix + errText(ctx, err)}
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	out := prefix + resp.Status
	if b := bodyText(body); b != "" {
		out += " Output: " + b
	}
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return result{registry.Passing, out}
	case resp.StatusCode == http.StatusTooManyRequests:
		return result{registry.Warning, out}
	default:
		return result{registry.Critical, out}
	}
}

// errText describes a probe error briefly: a timeout as such, a URL error
// without repeating the URL.
func errText(ctx context.Context, err error) string {
	if ctx.Err() != nil && errors.Is(err, context.DeadlineExceeded) {
		return "timed out"
	}
	var uerr *url.Error
	if errors.As(err, &uerr) {
		err = uerr.Err
	}
	return err.Error()
}

// bodyText makes a body fit for a check's output: valid printable UTF-8
// on one line, at most maxBodyOutput bytes.
func bodyText(b []byte) string {
	var sb strings.Builder
	space := false
	for len(b) > 0 && sb.Len() < maxBodyOutput {
		r, n := utf8.DecodeRune(b)
		b = b[n:]
		if r == utf8.RuneError || unicode.IsSpace(r) || !unicode.IsPrint(r) {
			space = sb.Len() > 0
			continue
		}
		if space {
			sb.WriteByte(' ')
			space = false
		}
		sb.WriteRune(r)
	}
	s := sb.String()
	if len(b) > 0 {
		s += "..."
	}
	return s
}
