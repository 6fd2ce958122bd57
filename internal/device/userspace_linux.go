package device

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/ipc"
	"golang.zx2c4.com/wireguard/tun"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// userspaceDevice runs wireguard-go inside this process. Configure and
// Stats talk to it in-process (IpcSet/IpcGet); the UAPI socket exists only
// so that stock `wg` can look at and change the interface.
type userspaceDevice struct {
	core
	dev  *device.Device
	uapi net.Listener

	acceptDone chan struct{}
}

func openUserspace(_ context.Context, opts OpenOptions) (Device, error) {
	// On Linux CreateTUN turns on virtio-net-hdr offloads (TSO/USO and
	// GRO) when the kernel supports them; they are most of wireguard-go's
	// throughput, so the TUN is created exactly as wireguard-go does.
	tdev, err := tun.CreateTUN(opts.Name, opts.MTU)
	if err != nil {
		return nil, fmt.Errorf("create TUN interface: %w", err)
	}
	if got, err := tdev.Name(); err != nil || got != opts.Name {
		tdev.Close()
		return nil, fmt.Errorf("create TUN interface: kernel named it %q (%v), want %q", got, err, opts.Name)
	}
	// The bind's sockets are opened when the device goes up and on every
	// listen port change, in the network namespace of the process.
	dev := device.NewDevice(tdev, conn.NewDefaultBind(), wgLogger(opts.Logger))

	f, err := ipc.UAPIOpen(opts.Name)
	if err != nil {
		dev.Close()
		return nil, fmt.Errorf("open UAPI socket %s: %w", uapiSocketPath(opts.Name), err)
	}
	l, err := ipc.UAPIListen(opts.Name, f)
	f.Close() // the listener holds its own copy of the descriptor
	if err != nil {
		dev.Close()
		return nil, fmt.Errorf("listen on UAPI socket %s: %w", uapiSocketPath(opts.Name), err)
	}
	d := &userspaceDevice{dev: dev, uapi: l, acceptDone: make(chan struct{})}
	d.core = core{name: opts.Name, log: opts.Logger, read: d.state, write: d.ipcSet}
	go d.serveUAPI()

	if err := (netlinkLinker{}).SetUp(opts.Name); err != nil {
		d.Close()
		return nil, err
	}
	// Setting the link up also brings the device up through a TUN event,
	// but asynchronously; Up here makes Open's return mean "running".
	if err := dev.Up(); err != nil {
		d.Close()
		return nil, fmt.Errorf("start wireguard-go on %s: %w", opts.Name, err)
	}
	return d, nil
}

// serveUAPI answers `wg` on the UAPI socket until Close. If someone
// deletes the socket file the listener fails; the device keeps running
// (Configure and Stats do not need the socket), only `wg` loses sight of
// it, which is worth a warning.
func (d *userspaceDevice) serveUAPI() {
	defer close(d.acceptDone)
	for {
		c, err := d.uapi.Accept()
		if err != nil {
			if !d.isClosed() {
				d.log.Warn("UAPI socket stopped; `wg` can no longer see this interface until lanlink restarts", "err", err)
			}
			return
		}
		go d.dev.IpcHandle(c)
	}
}

func (d *userspaceDevice) Backend() string { return BackendUserspace }

func (d *userspaceDevice) ipcSet(cfg wgtypes.Config) error {
	if err := d.dev.IpcSet(uapiSet(cfg)); err != nil {
		var ipcErr *device.IPCError
		if errors.As(err, &ipcErr) && ipcErr.ErrorCode() == ipc.IpcErrorPortInUse && cfg.ListenPort != nil {
			return fmt.Errorf("configure %s: listen port %d is in use by another program: free it or choose another port in the plan: %w", d.name, *cfg.ListenPort, err)
		}
		return fmt.Errorf("configure %s: %w", d.name, err)
	}
	return nil
}

func (d *userspaceDevice) state() (*wgtypes.Device, error) {
	s, err := d.dev.IpcGet()
	if err != nil {
		return nil, fmt.Errorf("read WireGuard state of %s: %w", d.name, err)
	}
	cur, err := parseUAPIGet(s)
	if err != nil {
		return nil, fmt.Errorf("read WireGuard state of %s: %w", d.name, err)
	}
	cur.Name = d.name
	return cur, nil
}

// Close removes the UAPI socket first, so that `wg` never finds a socket
// whose device is gone, then stops wireguard-go, which closes the bind and
// the TUN (the kernel deletes the interface with its last descriptor).
func (d *userspaceDevice) Close() error {
	if !d.markClosed() {
		return net.ErrClosed
	}

	err := d.uapi.Close()
	<-d.acceptDone
	d.dev.Close()
	if err != nil {
		return fmt.Errorf("close UAPI socket of %s: %w", d.name, err)
	}
	return nil
}

// wgLogger adapts wireguard-go's printf logger to slog. wireguard-go never
// formats private keys into messages (peers appear as abbreviated public
// keys), and the UAPI text, which may hold one, is never logged here.
func wgLogger(l *slog.Logger) *device.Logger {
	return &device.Logger{
		Verbosef: func(format string, args ...any) {
			if l.Enabled(context.Background(), slog.LevelDebug) {
				l.Debug(fmt.Sprintf(format, args...), "source", "wireguard-go")
			}
		},
		Errorf: func(format string, args ...any) {
			l.Error(fmt.Sprintf(format, args...), "source", "wireguard-go")
		},
	}
}
