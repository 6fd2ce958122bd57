// Package e2e holds lanlink's end-to-end tests: real `lanlink up` agents on
// the gateways of lab offices (network namespaces built by internal/lab),
// real WireGuard tunnels, routes and packets between LAN hosts. Nothing here
// is faked. Every test builds its own lab and the lab removes itself, also
// when the test fails.
package e2e
