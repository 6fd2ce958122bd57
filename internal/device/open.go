package device

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// Backend names for OpenOptions.Backend and Device.Backend.
const (
	BackendAuto      = "auto"
	BackendKernel    = "kernel"
	BackendUserspace = "userspace"
)

// DefaultMTU is used when OpenOptions.MTU is 0. It is wireguard-go's and
// wg-quick's default: 1500 minus the largest (IPv6) WireGuard overhead.
const DefaultMTU = 1420

// OpenOptions says which interface to create and how.
type OpenOptions struct {
	// Name is the interface name (at most 15 bytes). It must not exist
	// yet: Open never takes over an interface.
	Name string
	// MTU of the interface; 0 means DefaultMTU.
	MTU int
	// Backend is "auto" (or ""), "kernel" or "userspace". Auto uses kernel
	// WireGuard when the kernel has it and userspace wireguard-go
	// otherwise.
	Backend string
	// Logger receives the backend choice and wireguard-go's messages
	// (Debug for its verbose ones). nil discards.
	Logger *slog.Logger
}

// Open creates the interface opts.Name, up, without addresses or peers,
// in the network namespace of the calling process (run the process in
// another namespace to open it there). The caller must Close it.
//
// It fails with *InUseError when the name is taken by a link or by a
// running WireGuard process; a stale UAPI socket left by a crashed process
// is removed. With Backend "kernel" on a kernel without WireGuard it fails
// with an error matching ErrKernelUnsupported.
func Open(ctx context.Context, opts OpenOptions) (Device, error) {
	return osBackends().open(ctx, opts)
}

// backends are the OS-dependent steps of Open, replaceable in tests.
type backends struct {
	// checkName fails with *InUseError if name is taken, and removes a
	// stale UAPI socket.
	checkName func(name string, log *slog.Logger) error
	// kernel returns an error wrapping os.ErrNotExist ("not mine") when
	// the kernel has no WireGuard, so auto mode falls back.
	kernel    func(ctx context.Context, opts OpenOptions) (Device, error)
	userspace func(ctx context.Context, opts OpenOptions) (Device, error)
}

func (b backends) open(ctx context.Context, opts OpenOptions) (Device, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.MTU == 0 {
		opts.MTU = DefaultMTU
	}
	if opts.Backend == "" {
		opts.Backend = BackendAuto
	}
	if err := checkName(opts.Name); err != nil {
		return nil, err
	}
	if opts.MTU < 1280 || opts.MTU > 65535 {
		// 1280 is the IPv6 minimum; WireGuard would accept less but the
		// tunnel could then not carry IPv6 at all.
		return nil, fmt.Errorf("interface %s: MTU %d out of range 1280-65535", opts.Name, opts.MTU)
	}
	switch opts.Backend {
	case BackendAuto, BackendKernel, BackendUserspace:
	default:
		return nil, fmt.Errorf("unknown WireGuard backend %q: use auto, kernel or userspace", opts.Backend)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("open %s: %w", opts.Name, err)
	}
	log := opts.Logger.With("interface", opts.Name)
	opts.Logger = log
	if err := b.checkName(opts.Name, log); err != nil {
		return nil, err
	}

	switch opts.Backend {
	case BackendKernel:
		d, err := b.kernel(ctx, opts)
		if err != nil {
			if errors.Is(err, ErrKernelUnsupported) {
				return nil, fmt.Errorf("open %s with the kernel backend: %w; use backend auto or userspace", opts.Name, err)
			}
			return nil, fmt.Errorf("open %s with the kernel backend: %w", opts.Name, err)
		}
		log.Info("WireGuard device open", "backend", BackendKernel, "reason", "requested")
		return d, nil
	case BackendUserspace:
		d, err := b.userspace(ctx, opts)
		if err != nil {
			return nil, fmt.Errorf("open %s with the userspace backend: %w", opts.Name, err)
		}
		log.Info("WireGuard device open", "backend", BackendUserspace, "reason", "requested")
		return d, nil
	}

	d, kerr := b.kernel(ctx, opts)
	if kerr == nil {
		log.Info("WireGuard device open", "backend", BackendKernel, "reason", "kernel has WireGuard")
		return d, nil
	}
	if !errors.Is(kerr, os.ErrNotExist) {
		// A real failure (permissions, a name race): userspace would
		// fail the same way or hide it.
		return nil, fmt.Errorf("open %s with the kernel backend: %w", opts.Name, kerr)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("open %s: %w", opts.Name, err)
	}
	d, err := b.userspace(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("open %s: kernel backend unavailable (%v), userspace backend failed: %w", opts.Name, kerr, err)
	}
	log.Info("WireGuard device open", "backend", BackendUserspace, "reason", kerr.Error())
	return d, nil
}

// checkName rejects names the kernel would reject, with a message that
// says how to fix it rather than the kernel's EINVAL.
func checkName(name string) error {
	switch {
	case name == "":
		return errors.New("no interface name: set one with --interface")
	case len(name) > 15:
		return fmt.Errorf("interface name %q is longer than 15 bytes: choose a shorter one with --interface", name)
	case name == "." || name == ".." || strings.ContainsAny(name, "/: \t\n\x00"):
		return fmt.Errorf("interface name %q is not valid (no '/', ':' or spaces): choose another with --interface", name)
	}
	return nil
}

// peerStats converts a device's state into the Device.Stats answer.
func peerStats(d *wgtypes.Device) []PeerStats {
	out := make([]PeerStats, 0, len(d.Peers))
	for _, p := range d.Peers {
		hs := p.LastHandshakeTime
		if hs.Unix() <= 0 {
			// Both backends report "never" as the zero time or the epoch.
			hs = time.Time{}
		}
		out = append(out, PeerStats{
			PublicKey:     p.PublicKey,
			Endpoint:      addrPortOf(p.Endpoint),
			LastHandshake: hs,
			RxBytes:       p.ReceiveBytes,
			TxBytes:       p.TransmitBytes,
		})
	}
	return out
}
