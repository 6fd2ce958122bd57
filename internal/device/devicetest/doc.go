// Package devicetest provides a fake device.Device for the unit tests of
// packages that drive a WireGuard device (the agent): it records every
// applied Config and reports configurable stats. It must not touch any OS
// state, and product code must not import it.
package devicetest
