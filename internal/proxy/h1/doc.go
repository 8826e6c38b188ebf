// Package h1 is the proxy's own HTTP/1.1 server and client, behind the
// seams they implement: Server serves any http.Handler on a listener, and
// Transport is an http.RoundTripper. Both do what a reverse proxy needs on
// its hot path and less than net/http, whose server and transport spend a
// goroutine hand-off, a background read or a header copy on every request
// (as much, on this path, as the proxy's own work); either can be swapped
// for net/http's where that cost does not matter.
//
// Server reads requests with http.ReadRequest and answers through a lean
// http.ResponseWriter (Content-Length or chunked framing, trailers,
// HTTP/1.0, pipelining, Expect: 100-continue, Flush, Hijack). A
// connection that opens with the HTTP/2 preface (h2c, prior knowledge)
// goes to a net/http server. Transport sends a request in the caller's
// goroutine on a pooled kept-alive connection, one request per connection
// at a time, and reads the answer with http.ReadResponse.
//
// It owns only connections: no routing, retries, balancing or metrics
// (those are the proxy's). Limits, candidly: no TLS; no HTTP/1.1
// Upgrade: h2c; on the server, a client that leaves while a request with a
// body is answered is noticed only when the answer is written; the
// transport sends no protocol upgrades, Expect: 100-continue or request
// trailers (see Transport.Handles) and passes on no 1xx answers.
package h1
