package device

import (
	"fmt"
	"os"
)

// ErrKernelUnsupported says the running kernel has no WireGuard (no
// module, or built without it). It wraps os.ErrNotExist, the "not mine"
// answer of a backend, so Open in "auto" mode falls back to userspace.
var ErrKernelUnsupported error = kernelUnsupported{}

type kernelUnsupported struct{}

func (kernelUnsupported) Error() string {
	return "kernel WireGuard is not available (no wireguard module)"
}
func (kernelUnsupported) Unwrap() error { return os.ErrNotExist }

// InUseError says the interface name is taken, so Open refused to create
// or take over the interface. Callers that know a leftover is theirs (a
// kernel WireGuard link from a previous run) may remove it and retry.
type InUseError struct {
	Name string
	// Kind is the existing link's type ("wireguard", "tun", "dummy", ...),
	// or "" when no link exists but a process answers on the UAPI socket
	// (a wireguard-go in another network namespace: socket paths are
	// shared between namespaces).
	Kind string
	// Process is true when a running WireGuard process answers on
	// /var/run/wireguard/NAME.sock.
	Process bool
}

func (e *InUseError) Error() string {
	switch {
	case e.Process:
		return fmt.Sprintf("interface %s is in use by a running WireGuard process (it answers on %s); stop it or choose another name with --interface", e.Name, uapiSocketPath(e.Name))
	case e.Kind == "wireguard":
		return fmt.Sprintf("interface %s already exists as a kernel WireGuard interface (left over from an earlier run, or wg-quick); remove it with `ip link del %s` or choose another name with --interface", e.Name, e.Name)
	default:
		kind := ""
		if e.Kind != "" {
			kind = " (type " + e.Kind + ")"
		}
		return fmt.Sprintf("interface %s already exists%s and is not a lanlink interface; choose another name with --interface or remove it", e.Name, kind)
	}
}

// uapiSocketDir is where wireguard-go and wg(8) meet; it is the same path
// in every network namespace.
const uapiSocketDir = "/var/run/wireguard"

func uapiSocketPath(name string) string { return uapiSocketDir + "/" + name + ".sock" }
