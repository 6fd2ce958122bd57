// Package agent is the long-running lanlink site agent behind `lanlink up`.
//
// It loads the plan and the gateway's private key, finds its own site in
// the plan, brings up the WireGuard device and the host network (address,
// routes, forwarding) all-or-nothing, and then keeps them equal to the plan:
// it reloads on request, re-resolves DNS endpoints, and serves a root-only
// control socket for `lanlink status`, `reload` and `down`. On stop it leaves
// the host as it was before `up`.
//
// The agent never writes the plan and never sends, logs or stores the
// private key anywhere but the WireGuard device. It reaches the OS only
// through device.Device and hostnet.Host, which tests replace with fakes.
package agent
