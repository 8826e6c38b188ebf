package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/rosterhq/roster/internal/testutil"
)

// Linearizability: clients register, deregister and read (with
// ?consistent) a few instances through all three agents while one agent
// is killed with SIGKILL and restarted; porcupine checks the recorded
// history against a register (a variable per instance) model. The fault
// suite (fault_test.go) adds heartbeats and definite failures.

type linKind int

const (
	linRegister linKind = iota
	linDeregister
	linRead
	// linHeartbeat: a heartbeat answered 404 says the instance does not
	// exist at that point: the agent asked the leader before it said so
	// (registry.Service.known). A 204 says the renewal was taken, not that
	// the instance exists: an agent answers it from its own copy, which
	// may lag the log by the replication delay (a heartbeat costs no round
	// trip to the leader; ARCHITECTURE.md, "A write never answers 'not
	// found' from a copy that may be behind"). It changes nothing the
	// model holds.
	linHeartbeat
)

type linInput struct {
	kind  linKind
	key   string
	value string // register: the address written
}

// linOutput is what an operation observed. unknown: a write whose answer
// never came (or said nothing certain); it may or may not have happened.
// failed: a write refused with a definite error (the API said it was not
// applied: 400, 409, or 503 with Retry-After); it must not have happened.
type linOutput struct {
	ok       bool   // register/deregister succeeded; read or heartbeat found an instance
	notFound bool   // deregister, read or heartbeat: no such instance
	value    string // read: the address
	unknown  bool
	failed   bool
}

var linModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		var keys []string
		for _, op := range history {
			k := op.Input.(linInput).key
			if _, ok := byKey[k]; !ok {
				keys = append(keys, k)
			}
			byKey[k] = append(byKey[k], op)
		}
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() any { return "" }, // "" is absent
	Step: func(state, input, output any) (bool, any) {
		st, in, out := state.(string), input.(linInput), output.(linOutput)
		if out.failed {
			return in.kind == linRegister || in.kind == linDeregister, st
		}
		switch in.kind {
		case linHeartbeat:
			if out.notFound {
				return st == "", st
			}
			return true, st
		case linRegister:
			return true, in.value // a write of unknown outcome is placed last, if anywhere
		case linDeregister:
			switch {
			case out.unknown:
				return true, ""
			case out.notFound:
				return st == "", st
			default:
				return st != "", ""
			}
		default:
			if out.notFound {
				return st == "", st
			}
			return st == out.value, st
		}
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(linInput), output.(linOutput)
		switch in.kind {
		case linRegister:
			return fmt.Sprintf("register(%s, %s) ok=%t unknown=%t failed=%t", in.key, in.value, out.ok, out.unknown, out.failed)
		case linDeregister:
			return fmt.Sprintf("deregister(%s) ok=%t notfound=%t unknown=%t failed=%t", in.key, out.ok, out.notFound, out.unknown, out.failed)
		case linHeartbeat:
			return fmt.Sprintf("heartbeat(%s) ok=%t notfound=%t", in.key, out.ok, out.notFound)
		}
		return fmt.Sprintf("read(%s) = %q notfound=%t", in.key, out.value, out.notFound)
	},
	DescribeOperationMetadata: func(info any) string {
		s, _ := info.(string)
		return s
	},
}

func TestClusterLinearizable(t *testing.T) {
	ctx := bound(t)
	c := startCluster(t, 3)
	c.leader(t, 10*time.Second)
	keys := []string{"k0", "k1", "k2", "k3"}
	const clients = 6
	start := time.Now()
	var (
		mu  sync.Mutex
		ops []porcupine.Operation
	)
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	for cl := range clients {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(cl), 7))
			for i := 0; wctx.Err() == nil; i++ {
				nd := c.nodes[rng.IntN(len(c.nodes))]
				if nd.down.Load() {
					continue
				}
				in := linInput{key: keys[rng.IntN(len(keys))]}
				switch r := rng.IntN(10); {
				case r < 4:
					in.kind, in.value = linRegister, fmt.Sprintf("10.%d.%d.%d", cl, (i>>8)&255, i&255)
				case r < 6:
					in.kind = linDeregister
				default:
					in.kind = linRead
				}
				call := time.Since(start).Nanoseconds()
				out, keep := linDo(wctx, nd, in)
				ret := time.Since(start).Nanoseconds()
				if !keep {
					continue
				}
				if out.unknown {
					ret = -1 // set past the end of the history below
				}
				mu.Lock()
				ops = append(ops, porcupine.Operation{ClientId: cl, Input: in, Output: out, Call: call, Return: ret})
				mu.Unlock()
			}
		})
	}
	// Faults: kill -9 one agent (the leader) under load, then bring it back.
	pause := func(d time.Duration) {
		select {
		case <-wctx.Done():
		case <-time.After(d):
		}
	}
	pause(1500 * time.Millisecond)
	li, _ := c.leader(t, 10*time.Second)
	c.nodes[li].down.Store(true)
	c.nodes[li].a.Kill()
	pause(2 * time.Second)
	c.nodes[li].restart(t)
	pause(1500 * time.Millisecond)
	stop()
	wg.Wait()

	end := time.Since(start).Nanoseconds() + 1
	var unknown int
	for i := range ops {
		if ops[i].Return < 0 {
			ops[i].Return = end
			unknown++
		}
	}
	t.Logf("history: %d operations by %d clients (%d of unknown outcome)", len(ops), clients, unknown)
	if len(ops) < 200 {
		t.Fatalf("only %d operations recorded; the check proves little", len(ops))
	}
	res, info := porcupine.CheckOperationsVerbose(linModel, ops, 60*time.Second)
	switch res {
	case porcupine.Ok:
	case porcupine.Unknown:
		t.Logf("linearizability check timed out: inconclusive")
	default:
		path := t.TempDir() + "/history.html"
		if err := porcupine.VisualizePath(linModel, info, path); err == nil {
			t.Logf("visualisation of the violation: %s", path)
		}
		t.Fatalf("the history is not linearizable")
	}
}

// linDo runs one operation; keep is false for a read that got no answer.
func linDo(ctx context.Context, nd *clusterNode, in linInput) (linOutput, bool) {
	u := nd.url() + "/v1/services/lin/instances/" + in.key
	var method string
	var body any
	switch in.kind {
	case linRegister:
		method, body = "PUT", map[string]any{"address": in.value, "port": 80}
	case linDeregister:
		method = "DELETE"
	default:
		method, u = "GET", u+"?consistent"
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := testutil.Request(ctx, method, u, body)
	if err != nil {
		return linOutput{unknown: true}, in.kind != linRead
	}
	switch {
	case in.kind == linRead && resp.Status == http.StatusOK:
		var got instance
		if json.Unmarshal(resp.Body, &got) != nil {
			return linOutput{}, false
		}
		return linOutput{ok: true, value: got.Address}, true
	case in.kind == linRead && resp.Status == http.StatusNotFound:
		return linOutput{notFound: true}, true
	case in.kind == linRead:
		return linOutput{}, false
	case resp.Status == http.StatusOK || resp.Status == http.StatusCreated || resp.Status == http.StatusNoContent:
		return linOutput{ok: true}, true
	case in.kind == linDeregister && resp.Status == http.StatusNotFound:
		return linOutput{notFound: true}, true
	}
	return linOutput{unknown: true}, true
}

// TestLinModelRejectsViolations: the model is not trivially satisfied: a
// read that misses a write acknowledged before it began, or a deregister
// that found nothing after a completed register, is not linearizable;
// an unknown-outcome write may be taken as never applied. A heartbeat's
// 404 answers for absence like a read (its 204 claims nothing); a write
// refused with a definite error must not show.
func TestLinModelRejectsViolations(t *testing.T) {
	reg := func(v string, call, ret int64, unknown bool) porcupine.Operation {
		return porcupine.Operation{ClientId: 0, Input: linInput{kind: linRegister, key: "k", value: v}, Output: linOutput{ok: !unknown, unknown: unknown}, Call: call, Return: ret}
	}
	read := func(v string, call, ret int64) porcupine.Operation {
		out := linOutput{ok: v != "", value: v, notFound: v == ""}
		return porcupine.Operation{ClientId: 1, Input: linInput{kind: linRead, key: "k"}, Output: out, Call: call, Return: ret}
	}
	dereg := func(found bool, call, ret int64) porcupine.Operation {
		return porcupine.Operation{ClientId: 2, Input: linInput{kind: linDeregister, key: "k"}, Output: linOutput{ok: found, notFound: !found}, Call: call, Return: ret}
	}
	beat := func(found bool, call, ret int64) porcupine.Operation {
		return porcupine.Operation{ClientId: 3, Input: linInput{kind: linHeartbeat, key: "k"}, Output: linOutput{ok: found, notFound: !found}, Call: call, Return: ret}
	}
	refused := func(op porcupine.Operation) porcupine.Operation {
		op.Output = linOutput{failed: true}
		return op
	}
	for _, tc := range []struct {
		name string
		ops  []porcupine.Operation
		want bool // linearizable
	}{
		{"stale read", []porcupine.Operation{reg("a", 0, 10, false), read("", 20, 30)}, false},
		{"old value", []porcupine.Operation{reg("a", 0, 10, false), reg("b", 20, 30, false), read("a", 40, 50)}, false},
		{"lost deregister", []porcupine.Operation{reg("a", 0, 10, false), dereg(false, 20, 30)}, false},
		{"fresh read", []porcupine.Operation{reg("a", 0, 10, false), read("a", 20, 30), dereg(true, 40, 50), read("", 60, 70)}, true},
		{"concurrent read", []porcupine.Operation{reg("a", 0, 30, false), read("", 10, 20)}, true},
		{"unknown never applied", []porcupine.Operation{reg("a", 0, 1000, true), read("", 10, 20), read("", 30, 40)}, true},
		{"heartbeat finds a registered instance", []porcupine.Operation{reg("a", 0, 10, false), beat(true, 20, 30)}, true},
		{"heartbeat misses a registered instance", []porcupine.Operation{reg("a", 0, 10, false), beat(false, 20, 30)}, false},
		// A renewal taken by an agent whose copy still holds the instance.
		{"heartbeat taken after a deregister", []porcupine.Operation{reg("a", 0, 10, false), dereg(true, 20, 30), beat(true, 40, 50)}, true},
		{"heartbeat misses after a re-register", []porcupine.Operation{reg("a", 0, 10, false), dereg(true, 20, 30), reg("b", 40, 50, false), beat(false, 60, 70)}, false},
		{"heartbeat misses a registered instance before a read finds it", []porcupine.Operation{reg("a", 0, 10, false), beat(false, 20, 30), read("a", 40, 50)}, false},
		{"heartbeat concurrent with register", []porcupine.Operation{reg("a", 0, 30, false), beat(false, 10, 20), beat(true, 25, 40)}, true},
		{"heartbeat concurrent with deregister", []porcupine.Operation{reg("a", 0, 10, false), dereg(true, 20, 50), beat(true, 30, 40), read("", 60, 70)}, true},
		{"refused register seen later", []porcupine.Operation{refused(reg("a", 0, 10, false)), read("a", 20, 30)}, false},
		{"refused register never seen", []porcupine.Operation{refused(reg("a", 0, 10, false)), read("", 20, 30), beat(false, 40, 50)}, true},
		{"refused deregister took effect", []porcupine.Operation{reg("a", 0, 10, false), refused(dereg(true, 20, 30)), read("", 40, 50)}, false},
	} {
		if got := porcupine.CheckOperations(linModel, tc.ops); got != tc.want {
			t.Errorf("%s: linearizable = %t, want %t", tc.name, got, tc.want)
		}
	}
}
