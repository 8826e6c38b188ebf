// Package grpcresolver lets gRPC clients dial services registered in
// roster by name — roster:///payment-service — over the Go SDK's resolver
// cache, and balance their RPCs with the SDK's policies.
//
// It is its own module so that applications that use the SDK for plain
// HTTP do not pull in gRPC.
//
// # Resolver
//
// A Builder (NewBuilder, or Register for the whole process) resolves
// roster:///service targets through a client.Resolver: the first dial of a
// service fills the cache and starts its watch (a blocking query on the
// agent), and every change of the service's passing set that changes the
// target's endpoints is pushed to the ClientConn at once (Target.Changed),
// without polling. While the agent cannot be reached the cache keeps the
// last known set, so the ClientConn keeps it too: an empty set is pushed
// only when the registry answers that no instance passes. Each instance is
// one resolver.Endpoint whose attributes carry the SDK's endpoint (ID,
// weight, priority, zone, tags, metadata, canary; FromAttributes reads
// it); State.Addresses lists the same addresses, plain, for LB policies
// that still read them.
//
// The target's query selects instances and the policy, like a
// client.Filter:
//
//	roster:///payment-service?tag=grpc&meta=version=v2&canary=exclude&zone=eu-1a
//	roster:///search?balancer=ring_hash&hash_header=user-id
//	roster:///api?subset=90:version=v1&subset=10:version=v2
//
// tag and meta repeat (all must match); canary is include, exclude or
// only; zone is the preferred zone (default: the client.Resolver's), with
// spill-over to the others when it has no instance; subset is
// weight:key=value[,key=value]; balancer is round_robin (default), random,
// weighted_random, priority, ring_hash or least_loaded; hash_header names
// the request metadata key whose value keys ring_hash and subsets
// (WithKey sets a key on a context instead).
//
// # Balancer
//
// The resolver's service config selects the "roster" load-balancing
// policy. It keeps one connection per instance (gRPC's pick_first per
// endpoint) and picks for every RPC with the SDK's client.Target: its
// filters, zone preference, subsets and balance policy, skipping
// instances that passive outlier detection ejected. An RPC that ends with
// Unavailable, DeadlineExceeded, Internal, Unknown or DataLoss counts as a
// failure of its instance (five in a row eject it); other codes are the
// application's answers. In-flight counts (least_loaded) and ejections
// are the SDK's endpoints' own, shared with HTTP callers of the same
// client.Resolver. When the Target chooses an instance whose connection
// is not ready (still connecting, or failing while the registry still
// lists it), two more draws are made, then the same policy picks among
// the ready instances.
//
// To use one of gRPC's own policies over the same addresses instead,
// dial with grpc.WithDisableServiceConfig() and
// grpc.WithDefaultServiceConfig naming it.
package grpcresolver
