// Package cli is lanlink's command line: one file per command, all built
// into one cobra tree by root.go and run in-process by Run, so tests drive
// the real commands with their own writers, environment and temp dirs.
//
// Commands write to stdout only what the user asked for (a public key, an
// address, a rendered file, JSON) and everything else to stderr. They must
// not print or log private keys, and they change files only atomically:
// a failed command leaves every file as it was.
package cli
