package device

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
)

func osBackends() backends {
	return backends{
		checkName: func(name string, log *slog.Logger) error {
			return checkNameFree(netlinkLinker{}, uapiSocketDir, name, log)
		},
		kernel:    openKernel,
		userspace: openUserspace,
	}
}

// checkNameFree fails with *InUseError when a link named name exists or a
// process answers on its UAPI socket, and removes the socket if nobody
// answers: a wireguard-go that crashed leaves it behind, and its TUN went
// away with the process.
func checkNameFree(links linker, sockDir, name string, log *slog.Logger) error {
	kind, exists, err := links.Kind(name)
	if err != nil {
		return err
	}
	alive, err := probeUAPISocket(sockDir, name, log)
	if err != nil {
		return err
	}
	if exists || alive {
		return &InUseError{Name: name, Kind: kind, Process: alive}
	}
	return nil
}

// probeUAPISocket reports whether a process answers on sockDir/name.sock,
// and removes the socket file when nobody does.
func probeUAPISocket(sockDir, name string, log *slog.Logger) (alive bool, err error) {
	path := sockDir + "/" + name + ".sock"
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("check UAPI socket: %w", err)
	}
	if fi.Mode().Type() != os.ModeSocket {
		return false, fmt.Errorf("%s exists and is not a socket; remove it", path)
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return true, nil
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return false, fmt.Errorf("check UAPI socket %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return false, fmt.Errorf("remove stale UAPI socket: %w", err)
	}
	log.Info("removed stale UAPI socket left by a process that exited without closing it", "path", path)
	return false, nil
}

// RemoveStale deletes the kernel WireGuard link name. Kernel links outlive
// the process that created them (userspace TUNs do not), so a lanlink that
// was killed leaves its interface behind and the next Open fails with
// *InUseError{Kind: "wireguard"}; a caller that knows the name is its own
// may remove it and retry. Links of any other type are refused.
func RemoveStale(name string) error {
	return removeStale(netlinkLinker{}, name)
}

func removeStale(links linker, name string) error {
	kind, exists, err := links.Kind(name)
	if err != nil {
		return err
	}
	if !exists {
		return nil
	}
	if kind != "wireguard" {
		return fmt.Errorf("interface %s is a %s link, not a kernel WireGuard interface: not removing it", name, kind)
	}
	return links.Delete(name)
}

// netlinkLinker is the linker on a real kernel.
type netlinkLinker struct{}

func (netlinkLinker) AddWireguard(name string, mtu int) error {
	err := netlink.LinkAdd(&netlink.Wireguard{LinkAttrs: netlink.LinkAttrs{Name: name, MTU: mtu}})
	switch {
	case err == nil:
		return nil
	case errors.Is(err, syscall.EOPNOTSUPP):
		// rtnetlink's answer for an unknown link kind, after the kernel
		// failed to load a module for it.
		return fmt.Errorf("create wireguard link %s: %w", name, ErrKernelUnsupported)
	case errors.Is(err, syscall.EEXIST):
		return &InUseError{Name: name, Kind: "unknown"}
	}
	return fmt.Errorf("create wireguard link %s: %w", name, err)
}

func (netlinkLinker) SetUp(name string) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return fmt.Errorf("find interface %s: %w", name, err)
	}
	if err := netlink.LinkSetUp(l); err != nil {
		return fmt.Errorf("set interface %s up: %w", name, err)
	}
	return nil
}

func (netlinkLinker) Delete(name string) error {
	l, err := netlink.LinkByName(name)
	var nf netlink.LinkNotFoundError
	if errors.As(err, &nf) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("find interface %s: %w", name, err)
	}
	if err := netlink.LinkDel(l); err != nil {
		return fmt.Errorf("delete interface %s: %w", name, err)
	}
	return nil
}

func (netlinkLinker) Kind(name string) (string, bool, error) {
	l, err := netlink.LinkByName(name)
	var nf netlink.LinkNotFoundError
	if errors.As(err, &nf) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("look up interface %s: %w", name, err)
	}
	return l.Type(), true, nil
}
