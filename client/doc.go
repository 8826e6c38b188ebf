// Package client is the Go SDK of roster, a service registry: it
// registers instances and keeps their leases alive, discovers healthy
// instances through a local cache fed by the registry's blocking queries,
// balances requests over them, and plugs into net/http.
//
// It is its own module and imports only the standard library (and its
// own balance package), so an application that imports it pulls in
// neither the server nor any other dependency.
//
// # Registration
//
// Client.Register registers an instance and keeps its TTL lease alive:
// renewals at a third of the TTL, batched into one request for every
// registration of the client, retried with backoff and jitter, and a
// re-registration at once when the registry answers that it lost the
// instance. ServeGracefully runs an http.Server and, on SIGTERM or
// SIGINT, deregisters first, then stops accepting, drains in-flight
// requests within a deadline and returns.
//
// # Discovery
//
// A Resolver keeps the passing instances of each service it is asked about
// in memory. The first lookup of a service fetches it and starts a watch
// (a blocking query that returns when the service changes; past
// ResolverConfig.MaxDirectWatches services, one blocking query on the
// service list follows them all); later lookups read memory. When the
// agent cannot be reached the last known set is served, marked stale
// (Resolver.Stale, Hooks.Stale, a log line), and the watch reconnects with
// backoff: a set is never emptied because the registry blinked. A watch
// whose index goes backwards (a new or restored registry) starts over
// from 0, and every watch paces its queries (ResolverConfig.MinInterval
// plus jitter) so that it never spins and a fleet does not query in
// waves. A service nobody uses for ResolverConfig.IdleTimeout (an open
// Target counts as use) is dropped from the cache and no longer watched,
// and a name the agent rejects is remembered for RejectedTTL, then
// dropped, not retried.
//
// A Target is a filtered, balanced view of one service: tags, metadata,
// canary in or out, a preferred zone with spill-over, and weighted
// subsets (say 90% to version v1 and 10% to v2). Target.Pick reads memory
// only and does not allocate.
//
// # Balancing
//
// Policies live in package balance: round robin, random, weighted random,
// RFC 2782 priority then weight, consistent hashing on a caller key (ring
// hash) and least-loaded (power of two choices). Every pick skips
// endpoints that passive outlier detection ejected after consecutive
// failures.
//
// # Transports
//
// Transport is an http.RoundTripper that sends requests for hosts naming a
// service (MatchHosts("payment-service", "*.service.consul")) to a
// balanced instance and retries idempotent requests on another. Dialer
// does the same at the connection level. SRVDialer resolves hosts through
// plain DNS SRV records from any DNS server, such as roster's DNS
// interface.
//
// Limits: the resolver follows passing instances only (warning and
// critical ones are never picked); subsets and filters are evaluated in
// the client, over the service's whole passing set.
package client
