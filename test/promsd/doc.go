// Package promsd checks that Prometheus's own Consul service discovery
// finds the targets registered in roster.
package promsd
