// Package keys creates and reads the WireGuard private key of a gateway.
//
// The private key is born on the gateway and never leaves it: the plan holds
// only public keys. This package must never print, log or put key material
// in an error; callers may show its errors to users as they are.
package keys
