package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// agentClient calls an agent's HTTP API.
type agentClient struct {
	base string
	http *http.Client
}

func newAgentClient(addr string) *agentClient {
	base := addr
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	return &agentClient{base: strings.TrimRight(base, "/"), http: &http.Client{}}
}

// apiError is an error answer from the agent.
type apiError struct {
	Status int
	Msg    string `json:"error"`
	Fields []struct {
		Field   string `json:"field"`
		Message string `json:"message"`
	} `json:"fields"`
}

func (e *apiError) Error() string {
	if len(e.Fields) == 0 {
		return fmt.Sprintf("%s (HTTP %d)", e.Msg, e.Status)
	}
	parts := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		parts[i] = f.Field + ": " + f.Message
	}
	return fmt.Sprintf("invalid: %s (HTTP %d)", strings.Join(parts, "; "), e.Status)
}

// do sends a request with an optional JSON body and decodes a JSON answer
// into out (when non-nil). A timeout of 0 means none.
func (c *agentClient) do(ctx context.Context, method, path string, in, out any, timeout time.Duration) (*http.Response, error) {
	var body io.Reader
	if in != nil {
		if r, ok := in.(io.Reader); ok {
			body = r
		} else {
			b, err := json.Marshal(in)
			if err != nil {
				return nil, err
			}
			body = bytes.NewReader(b)
		}
	}
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot reach agent at %s: %w", c.base, unwrapURLError(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		e := &apiError{Status: resp.StatusCode}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if json.Unmarshal(b, e) != nil || e.Msg == "" {
			e.Msg = strings.TrimSpace(string(b))
			if e.Msg == "" {
				e.Msg = http.StatusText(resp.StatusCode)
			}
		}
		return resp, e
	}
	if w, ok := out.(io.Writer); ok {
		_, err = io.Copy(w, resp.Body)
		return resp, err
	}
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			return resp, fmt.Errorf("bad answer from agent: %w", err)
		}
	}
	return resp, nil
}

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
