package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"syscall"

	"github.com/vishvananda/netlink"

	"lanlink/internal/device"
	"lanlink/internal/firewall"
	"lanlink/internal/hostnet"
)

type realSystem struct{}

func (realSystem) CleanLeftovers(stateDir, iface, backend string) error {
	// A kernel WireGuard interface survives its agent; a userspace one
	// dies with the process that held its TUN.
	if backend == "kernel" {
		if l, err := netlink.LinkByName(iface); err == nil && l.Type() == "wireguard" {
			if err := netlink.LinkDel(l); err != nil {
				return fmt.Errorf("remove leftover interface %s: %w", iface, err)
			}
		}
	}
	if err := hostnet.Recover(stateDir, iface, nil); err != nil {
		return err
	}
	if err := firewall.Recover(firewall.Options{}, iface); err != nil {
		return err
	}
	removeAgentState(stateDir, iface)
	return nil
}

func (realSystem) InterfaceExists(name string) (bool, string, error) {
	l, err := netlink.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return false, "", nil
		}
		return false, "", fmt.Errorf("look up interface %s: %w", name, err)
	}
	return true, l.Type(), nil
}

func (realSystem) OpenDevice(ctx context.Context, o device.OpenOptions) (device.Device, error) {
	return device.Open(ctx, o)
}

func (realSystem) NewHost(o hostnet.Options) (hostnet.Host, error) { return hostnet.New(o) }

func (realSystem) NewFirewall(o firewall.Options) (firewall.Firewall, error) { return firewall.New(o) }

func (realSystem) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	return net.DefaultResolver.LookupNetIP(ctx, network, host)
}

func stamp(path string) fileStamp {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{err: true}
	}
	s := fileStamp{size: fi.Size(), mtime: fi.ModTime()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		s.ino = st.Ino
	}
	return s
}
