package device

import (
	"context"
	"errors"
	"fmt"
	"net"

	"golang.zx2c4.com/wireguard/wgctrl"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// linker is the rtnetlink part of the kernel backend (and of the name
// checks shared with userspace).
type linker interface {
	// AddWireguard creates a kernel WireGuard link. It fails with an error
	// wrapping ErrKernelUnsupported when the kernel has no WireGuard.
	AddWireguard(name string, mtu int) error
	// SetUp sets the link administratively up.
	SetUp(name string) error
	// Delete removes the link; a missing link is not an error.
	Delete(name string) error
	// Kind reports the link's type ("wireguard", "tun", ...) and whether
	// it exists.
	Kind(name string) (kind string, exists bool, err error)
}

// wgClient is the part of *wgctrl.Client the kernel backend uses.
type wgClient interface {
	Device(name string) (*wgtypes.Device, error)
	ConfigureDevice(name string, cfg wgtypes.Config) error
	Close() error
}

type kernelDevice struct {
	core
	links linker
	wg    wgClient
}

func openKernel(ctx context.Context, opts OpenOptions) (Device, error) {
	return openKernelWith(ctx, opts, netlinkLinker{}, func() (wgClient, error) { return wgctrl.New() })
}

func openKernelWith(_ context.Context, opts OpenOptions, links linker, newClient func() (wgClient, error)) (*kernelDevice, error) {
	if err := links.AddWireguard(opts.Name, opts.MTU); err != nil {
		return nil, err
	}
	// From here on the link exists and must not outlive a failed Open.
	fail := func(err error) (*kernelDevice, error) {
		if derr := links.Delete(opts.Name); derr != nil {
			err = errors.Join(err, fmt.Errorf("undo: %w", derr))
		}
		return nil, err
	}
	wg, err := newClient()
	if err != nil {
		return fail(fmt.Errorf("open wgctrl client: %w", err))
	}
	if err := links.SetUp(opts.Name); err != nil {
		wg.Close()
		return fail(err)
	}
	d := &kernelDevice{links: links, wg: wg}
	d.core = core{name: opts.Name, log: opts.Logger, read: d.state, write: func(cfg wgtypes.Config) error {
		if err := d.wg.ConfigureDevice(d.name, cfg); err != nil {
			return fmt.Errorf("configure %s: %w", d.name, err)
		}
		return nil
	}}
	return d, nil
}

func (d *kernelDevice) Backend() string { return BackendKernel }

func (d *kernelDevice) state() (*wgtypes.Device, error) {
	cur, err := d.wg.Device(d.name)
	if err != nil {
		return nil, fmt.Errorf("read WireGuard state of %s: %w", d.name, err)
	}
	return cur, nil
}

func (d *kernelDevice) Close() error {
	if !d.markClosed() {
		return net.ErrClosed
	}
	var errs []error
	if err := d.wg.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close wgctrl client: %w", err))
	}
	if err := d.links.Delete(d.name); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
