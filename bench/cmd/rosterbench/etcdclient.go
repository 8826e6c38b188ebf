package main

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protowire"
)

// A minimal etcd v3 client: the five RPCs the scenarios need (Put, Range,
// LeaseGrant, LeaseKeepAlive, Watch) and Status, spoken over gRPC with the
// messages encoded by hand with protowire. This keeps go.etcd.io/etcd out
// of the module (its client pins older gRPC and genproto) while measuring
// etcd through the same gRPC path its own client uses. Field numbers are
// those of etcd's api/v3/etcdserverpb/rpc.proto.

// rawCodec passes already-encoded protobuf bytes through gRPC.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) {
	switch m := v.(type) {
	case []byte:
		return m, nil
	case *[]byte:
		return *m, nil
	}
	return nil, fmt.Errorf("rawCodec: cannot marshal %T", v)
}

func (rawCodec) Unmarshal(data []byte, v any) error {
	p, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("rawCodec: cannot unmarshal into %T", v)
	}
	*p = append((*p)[:0], data...)
	return nil
}

func (rawCodec) Name() string { return "proto" }

var bidi = &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}

// etcdConn is one gRPC connection to etcd.
type etcdConn struct{ cc *grpc.ClientConn }

func dialEtcd(addr string) (*etcdConn, error) {
	cc, err := grpc.NewClient("passthrough:///"+addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{})))
	if err != nil {
		return nil, err
	}
	return &etcdConn{cc: cc}, nil
}

func (c *etcdConn) Close() error { return c.cc.Close() }

func (c *etcdConn) invoke(ctx context.Context, method string, req []byte) ([]byte, error) {
	var resp []byte
	err := c.cc.Invoke(ctx, method, req, &resp)
	return resp, err
}

// Put writes key=value, attached to lease when it is not 0, and returns
// the store revision of the write.
func (c *etcdConn) Put(ctx context.Context, key, value []byte, lease int64) (int64, error) {
	var b []byte
	b = appendBytes(b, 1, key)
	b = appendBytes(b, 2, value)
	if lease != 0 {
		b = appendVarint(b, 3, uint64(lease))
	}
	resp, err := c.invoke(ctx, "/etcdserverpb.KV/Put", b)
	if err != nil {
		return 0, err
	}
	return headerRevision(resp)
}

// prefixEnd is the range end that selects every key with prefix p.
func prefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return []byte{0}
}

// rangeRequest encodes a prefix read; etcd's default (linearizable) unless
// serializable.
func rangeRequest(prefix []byte, serializable bool) []byte {
	var b []byte
	b = appendBytes(b, 1, prefix)
	b = appendBytes(b, 2, prefixEnd(prefix))
	if serializable {
		b = appendVarint(b, 7, 1)
	}
	return b
}

// Range sends an encoded rangeRequest and returns the raw response.
func (c *etcdConn) Range(ctx context.Context, req []byte) ([]byte, error) {
	return c.invoke(ctx, "/etcdserverpb.KV/Range", req)
}

// rangeCount counts the key-values in a RangeResponse.
func rangeCount(resp []byte) (int, error) {
	n := 0
	err := eachField(resp, func(num protowire.Number, _ uint64, _ []byte) error {
		if num == 2 {
			n++
		}
		return nil
	})
	return n, err
}

// LeaseGrant grants a lease of ttl seconds and returns its ID.
func (c *etcdConn) LeaseGrant(ctx context.Context, ttl int64) (int64, error) {
	resp, err := c.invoke(ctx, "/etcdserverpb.Lease/LeaseGrant", appendVarint(nil, 1, uint64(ttl)))
	if err != nil {
		return 0, err
	}
	var id int64
	var msg string
	err = eachField(resp, func(num protowire.Number, v uint64, b []byte) error {
		switch num {
		case 2:
			id = int64(v)
		case 4:
			msg = string(b)
		}
		return nil
	})
	if err == nil && msg != "" {
		err = errors.New("lease grant: " + msg)
	}
	if err == nil && id == 0 {
		err = errors.New("lease grant: no ID")
	}
	return id, err
}

// KeepAliveStream opens a LeaseKeepAlive stream, the way etcd's client
// renews all of a process's leases over one stream.
func (c *etcdConn) KeepAliveStream(ctx context.Context) (grpc.ClientStream, error) {
	return c.cc.NewStream(ctx, bidi, "/etcdserverpb.Lease/LeaseKeepAlive")
}

func keepAliveRequest(id int64) []byte { return appendVarint(nil, 1, uint64(id)) }

// keepAliveTTL returns the TTL of a LeaseKeepAliveResponse; 0 means the
// lease is gone.
func keepAliveTTL(resp []byte) (int64, error) {
	var ttl int64
	err := eachField(resp, func(num protowire.Number, v uint64, _ []byte) error {
		if num == 3 {
			ttl = int64(v)
		}
		return nil
	})
	return ttl, err
}

// WatchStream opens a Watch stream and creates one watch on prefix from
// the current revision; it returns once etcd confirmed the watch.
func (c *etcdConn) WatchStream(ctx context.Context, prefix []byte) (grpc.ClientStream, error) {
	st, err := c.cc.NewStream(ctx, bidi, "/etcdserverpb.Watch/Watch")
	if err != nil {
		return nil, err
	}
	var create []byte
	create = appendBytes(create, 1, prefix)
	create = appendBytes(create, 2, prefixEnd(prefix))
	if err := st.SendMsg(appendBytes(nil, 1, create)); err != nil {
		return nil, err
	}
	var resp []byte
	if err := st.RecvMsg(&resp); err != nil {
		return nil, err
	}
	ev, err := parseWatchResponse(resp)
	if err != nil {
		return nil, err
	}
	if !ev.created || ev.canceled {
		return nil, fmt.Errorf("watch not created (canceled=%v %s)", ev.canceled, ev.reason)
	}
	return st, nil
}

type watchResponse struct {
	created, canceled bool
	reason            string
	events            int
	revision          int64
}

func parseWatchResponse(resp []byte) (watchResponse, error) {
	var w watchResponse
	err := eachField(resp, func(num protowire.Number, v uint64, b []byte) error {
		switch num {
		case 1:
			rev, err := headerRevisionOf(b)
			w.revision = rev
			return err
		case 3:
			w.created = v != 0
		case 4:
			w.canceled = v != 0
		case 6:
			w.reason = string(b)
		case 11:
			w.events++
		}
		return nil
	})
	return w, err
}

// Status returns the server's version, which also proves it serves.
func (c *etcdConn) Status(ctx context.Context) (string, error) {
	resp, err := c.invoke(ctx, "/etcdserverpb.Maintenance/Status", nil)
	if err != nil {
		return "", err
	}
	var version string
	err = eachField(resp, func(num protowire.Number, _ uint64, b []byte) error {
		if num == 2 {
			version = string(b)
		}
		return nil
	})
	return version, err
}

// headerRevision reads header.revision (field 1, then field 3) of a response.
func headerRevision(resp []byte) (int64, error) {
	var rev int64
	err := eachField(resp, func(num protowire.Number, _ uint64, b []byte) error {
		if num == 1 {
			var err error
			rev, err = headerRevisionOf(b)
			return err
		}
		return nil
	})
	return rev, err
}

func headerRevisionOf(header []byte) (int64, error) {
	var rev int64
	err := eachField(header, func(num protowire.Number, v uint64, _ []byte) error {
		if num == 3 {
			rev = int64(v)
		}
		return nil
	})
	return rev, err
}

func appendBytes(b []byte, num protowire.Number, v []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}

func appendVarint(b []byte, num protowire.Number, v uint64) []byte {
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

// eachField calls fn for every varint and length-delimited field of a
// message (skipping others), with v or b set according to the wire type.
func eachField(msg []byte, fn func(num protowire.Number, v uint64, b []byte) error) error {
	for len(msg) > 0 {
		num, typ, n := protowire.ConsumeTag(msg)
		if n < 0 {
			return protowire.ParseError(n)
		}
		msg = msg[n:]
		switch typ {
		case protowire.VarintType:
			v, n := protowire.ConsumeVarint(msg)
			if n < 0 {
				return protowire.ParseError(n)
			}
			msg = msg[n:]
			if err := fn(num, v, nil); err != nil {
				return err
			}
		case protowire.BytesType:
			b, n := protowire.ConsumeBytes(msg)
			if n < 0 {
				return protowire.ParseError(n)
			}
			msg = msg[n:]
			if err := fn(num, 0, b); err != nil {
				return err
			}
		default:
			n := protowire.ConsumeFieldValue(num, typ, msg)
			if n < 0 {
				return protowire.ParseError(n)
			}
			msg = msg[n:]
		}
	}
	return nil
}
