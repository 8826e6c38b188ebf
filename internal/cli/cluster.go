package cli

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/rosterhq/roster/client"
)

// notClustered explains the plain 404 of an agent without the cluster
// endpoints.
func (a *agent) notClustered(ctx context.Context, err error) error {
	var ae *client.APIError
	if errors.As(err, &ae) && ae.Status == http.StatusNotFound && ae.Message == "404 page not found" {
		return errors.New("the agent is not a cluster server (start it with -server, -join or -bootstrap-expect)")
	}
	return a.explain(ctx, err)
}

func runMembers(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet("members", e)
	var c clientFlags
	c.bind(fs, e)
	pos, err := parse(e, fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageError{"unexpected argument " + pos[0]}
	}
	a, err := newAgent(c.addr)
	if err != nil {
		return err
	}
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	// client.ClusterMembers prints as the agent sends it (TestMembersJSON).
	out, err := a.ClusterMembers(rctx)
	if err != nil {
		return a.notClustered(ctx, err)
	}
	if c.json {
		return printJSON(e.stdout, out)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tRAFT ADDRESS\tHTTP ADDRESS\tROLE\tVOTER\tHEALTH\tLAST CONTACT\tAPPLIED INDEX")
	for _, m := range out.Members {
		health := "healthy"
		if !m.Healthy {
			health = "unhealthy"
		}
		if m.UnreachableMS > 0 {
			// The leader's view: dead-server cleanup removes it at
			// -dead-server-after.
			health += " (leader cannot reach it for " + (time.Duration(m.UnreachableMS) * time.Millisecond).String() + ")"
		}
		contact := "-"
		switch {
		case m.Role == "leader":
			contact = "0ms"
		case m.LastContactMS >= 0:
			contact = strconv.FormatInt(m.LastContactMS, 10) + "ms"
		}
		id := m.ID
		if id == out.Self {
			id += " (this agent)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%t\t%s\t%s\t%d\n", id, m.Address, dash(m.HTTPAddr), m.Role, m.Voter, health, contact, m.AppliedIndex)
	}
	return tw.Flush()
}

// runOperator runs `operator raft remove-peer ID|ADDR`.
func runOperator(ctx context.Context, e *env, args []string) error {
	if len(args) < 2 || args[0] != "raft" || args[1] != "remove-peer" {
		return usageError{"wants raft remove-peer ID|ADDRESS"}
	}
	fs := newFlagSet("operator raft remove-peer", e)
	var c clientFlags
	c.bind(fs, e)
	pos, err := parse(e, fs, args[2:])
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError{"wants raft remove-peer ID|ADDRESS"}
	}
	a, err := newAgent(c.addr)
	if err != nil {
		return err
	}
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	removed, err := a.RemovePeer(rctx, pos[0])
	if err != nil {
		return a.notClustered(ctx, err)
	}
	if c.json {
		return printJSON(e.stdout, struct {
			Removed string `json:"removed"`
		}{removed})
	}
	fmt.Fprintf(e.stdout, "removed server %s from the cluster\n", removed)
	return nil
}
