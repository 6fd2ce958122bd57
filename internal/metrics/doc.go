// Package metrics serves a running agent's status as Prometheus metrics
// (`lanlink up --metrics ADDR`): per-peer handshake times, traffic and
// up/down, the plan generation and rejected reloads.
//
// The text exposition format is written by hand: it is a small, stable
// format and lanlink exports a handful of gauges and counters, which does
// not justify client_golang and its dependencies in the binary. The tests
// parse the output with the Prometheus project's own parser (expfmt), so a
// formatting mistake fails them.
//
// Every scrape asks the agent for a fresh Status; nothing is cached, so a
// scrape never shows stale numbers, and an agent whose loop does not answer
// fails the scrape (HTTP 503) rather than reporting old values. The
// package must not change the agent's state, and it serves only /metrics:
// the listen address is the operator's choice, and loopback is the safe
// one (the metrics name the sites and the public endpoints are not in
// them, but the network's shape is).
package metrics
