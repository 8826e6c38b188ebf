package cli

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/rosterhq/roster/client"
)

const requestTimeout = 30 * time.Second

// errInterrupted: SIGINT or SIGTERM ended a command before the agent
// answered.
var errInterrupted = errors.New("interrupted")

// agent is the SDK client of one command, and the base URL its messages
// name.
type agent struct {
	*client.Client
	base string
}

// newAgent returns an SDK client of the agent at addr ("http://" is added
// when addr has no scheme).
func newAgent(addr string) (*agent, error) {
	base := addr
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	base = strings.TrimRight(base, "/")
	c, err := client.New(client.Config{Address: base})
	if err != nil {
		return nil, err
	}
	return &agent{Client: c, base: base}, nil
}

// explain turns an error of an SDK call made under ctx into the command's
// one-line reason: the agent's message and status, "cannot reach agent",
// "bad answer from agent", or errInterrupted once ctx (the command's, not
// a request timeout) is canceled.
func (a *agent) explain(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(ctx.Err(), context.Canceled) {
		return errInterrupted
	}
	var aerr *client.APIError
	var derr *client.DecodeError
	var uerr *url.Error
	switch {
	case errors.As(err, &aerr):
		return apiError(aerr)
	case errors.As(err, &derr):
		return fmt.Errorf("bad answer from agent: %w", derr.Err)
	case errors.As(err, &uerr):
		return fmt.Errorf("cannot reach agent at %s: %w", a.base, uerr.Err)
	}
	return err
}

// apiError is the message of an error answer: the agent's message, or
// every offending field, and the status.
func apiError(e *client.APIError) error {
	if len(e.Fields) == 0 {
		return fmt.Errorf("%s (HTTP %d)", e.Message, e.Status)
	}
	parts := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		parts[i] = f.Field + ": " + f.Message
	}
	return fmt.Errorf("invalid: %s (HTTP %d)", strings.Join(parts, "; "), e.Status)
}
