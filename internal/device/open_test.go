package device

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// stubDevice is what the fake backends return.
type stubDevice struct{ name, backend string }

func (s stubDevice) Name() string              { return s.name }
func (s stubDevice) Backend() string           { return s.backend }
func (stubDevice) Configure(Config) error      { return nil }
func (stubDevice) Stats() ([]PeerStats, error) { return nil, nil }
func (stubDevice) Close() error                { return nil }

func TestBackendsOpen(t *testing.T) {
	unsupported := fmt.Errorf("create wireguard link wg0: %w", ErrKernelUnsupported)
	tests := []struct {
		name         string
		opts         OpenOptions
		inUse        error
		kernelErr    error
		userErr      error
		wantBackend  string
		wantErr      string // substring; "" means success
		wantIs       error
		wantCalls    []string
		wantLogLines []string // substrings of the log
	}{
		{
			name:         "auto prefers the kernel",
			opts:         OpenOptions{Name: "wg0"},
			wantBackend:  BackendKernel,
			wantCalls:    []string{"check wg0", "kernel wg0 mtu 1420"},
			wantLogLines: []string{"backend=kernel", "interface=wg0"},
		},
		{
			name:         "auto falls back to userspace",
			opts:         OpenOptions{Name: "wg0", MTU: 1380, Backend: BackendAuto},
			kernelErr:    unsupported,
			wantBackend:  BackendUserspace,
			wantCalls:    []string{"check wg0", "kernel wg0 mtu 1380", "userspace wg0 mtu 1380"},
			wantLogLines: []string{"backend=userspace", "no wireguard module"},
		},
		{
			name:      "auto does not hide a real kernel failure",
			opts:      OpenOptions{Name: "wg0"},
			kernelErr: syscall.EPERM,
			wantIs:    syscall.EPERM,
			wantErr:   "kernel backend",
			wantCalls: []string{"check wg0", "kernel wg0 mtu 1420"},
		},
		{
			name:      "auto reports both failures",
			opts:      OpenOptions{Name: "wg0"},
			kernelErr: unsupported,
			userErr:   errors.New("no /dev/net/tun"),
			wantErr:   "(no wireguard module)), userspace backend failed: no /dev/net/tun",
			wantCalls: []string{"check wg0", "kernel wg0 mtu 1420", "userspace wg0 mtu 1420"},
		},
		{
			name:      "kernel requested but missing",
			opts:      OpenOptions{Name: "wg0", Backend: BackendKernel},
			kernelErr: unsupported,
			wantIs:    ErrKernelUnsupported,
			wantErr:   "use backend auto or userspace",
			wantCalls: []string{"check wg0", "kernel wg0 mtu 1420"},
		},
		{
			name:         "userspace requested",
			opts:         OpenOptions{Name: "wg0", Backend: BackendUserspace},
			wantBackend:  BackendUserspace,
			wantCalls:    []string{"check wg0", "userspace wg0 mtu 1420"},
			wantLogLines: []string{"reason=requested"},
		},
		{
			name:      "name in use stops before any backend",
			opts:      OpenOptions{Name: "wg0"},
			inUse:     &InUseError{Name: "wg0", Kind: "bridge"},
			wantErr:   "interface wg0 already exists (type bridge) and is not a lanlink interface",
			wantCalls: []string{"check wg0"},
		},
		{name: "empty name", opts: OpenOptions{}, wantErr: "no interface name"},
		{name: "long name", opts: OpenOptions{Name: "lanlink-0123456789"}, wantErr: "longer than 15 bytes"},
		{name: "slash", opts: OpenOptions{Name: "a/b"}, wantErr: "not valid"},
		{name: "tiny MTU", opts: OpenOptions{Name: "wg0", MTU: 576}, wantErr: "MTU 576 out of range"},
		{name: "unknown backend", opts: OpenOptions{Name: "wg0", Backend: "bpf"}, wantErr: `unknown WireGuard backend "bpf"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls []string
			var logBuf bytes.Buffer
			tt.opts.Logger = slog.New(slog.NewTextHandler(&logBuf, nil))
			b := backends{
				checkName: func(name string, _ *slog.Logger) error {
					calls = append(calls, "check "+name)
					return tt.inUse
				},
				kernel: func(_ context.Context, o OpenOptions) (Device, error) {
					calls = append(calls, fmt.Sprintf("kernel %s mtu %d", o.Name, o.MTU))
					if tt.kernelErr != nil {
						return nil, tt.kernelErr
					}
					return stubDevice{o.Name, BackendKernel}, nil
				},
				userspace: func(_ context.Context, o OpenOptions) (Device, error) {
					calls = append(calls, fmt.Sprintf("userspace %s mtu %d", o.Name, o.MTU))
					if tt.userErr != nil {
						return nil, tt.userErr
					}
					return stubDevice{o.Name, BackendUserspace}, nil
				},
			}
			d, err := b.open(t.Context(), tt.opts)
			if tt.wantErr == "" && tt.wantIs == nil {
				if err != nil {
					t.Fatalf("open() error: %v", err)
				}
				if d.Backend() != tt.wantBackend {
					t.Errorf("Backend() = %q, want %q", d.Backend(), tt.wantBackend)
				}
			} else {
				if err == nil {
					t.Fatalf("open() succeeded with backend %s, want error", d.Backend())
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("open() error = %q, want it to contain %q", err, tt.wantErr)
				}
				if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
					t.Errorf("open() error = %v, want it to match %v", err, tt.wantIs)
				}
			}
			if diff := cmp.Diff(tt.wantCalls, calls); diff != "" {
				t.Errorf("backend calls mismatch (-want +got):\n%s", diff)
			}
			for _, want := range tt.wantLogLines {
				if !strings.Contains(logBuf.String(), want) {
					t.Errorf("log does not contain %q:\n%s", want, logBuf.String())
				}
			}
		})
	}
}

func TestOpenCanceledContext(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	b := backends{checkName: func(string, *slog.Logger) error {
		t.Error("checkName called with a canceled context")
		return nil
	}}
	if _, err := b.open(ctx, OpenOptions{Name: "wg0"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("open() = %v, want context.Canceled", err)
	}
}

func TestErrKernelUnsupported(t *testing.T) {
	err := fmt.Errorf("x: %w", ErrKernelUnsupported)
	if !errors.Is(err, os.ErrNotExist) {
		t.Error("ErrKernelUnsupported does not match os.ErrNotExist")
	}
	if !errors.Is(err, ErrKernelUnsupported) {
		t.Error("wrapped ErrKernelUnsupported does not match itself")
	}
	if errors.Is(os.ErrNotExist, ErrKernelUnsupported) {
		t.Error("os.ErrNotExist matches ErrKernelUnsupported")
	}
}

func TestInUseErrorMessages(t *testing.T) {
	tests := []struct {
		err  InUseError
		want string
	}{
		{InUseError{Name: "wg0", Process: true}, "interface wg0 is in use by a running WireGuard process (it answers on /var/run/wireguard/wg0.sock); stop it or choose another name with --interface"},
		{InUseError{Name: "wg0", Kind: "tun", Process: true}, "interface wg0 is in use by a running WireGuard process (it answers on /var/run/wireguard/wg0.sock); stop it or choose another name with --interface"},
		{InUseError{Name: "wg0", Kind: "wireguard"}, "interface wg0 already exists as a kernel WireGuard interface (left over from an earlier run, or wg-quick); remove it with `ip link del wg0` or choose another name with --interface"},
		{InUseError{Name: "wg0", Kind: "dummy"}, "interface wg0 already exists (type dummy) and is not a lanlink interface; choose another name with --interface or remove it"},
		{InUseError{Name: "wg0"}, "interface wg0 already exists and is not a lanlink interface; choose another name with --interface or remove it"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, tt.err.Error()); diff != "" {
				t.Errorf("Error() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPeerStats(t *testing.T) {
	hs := time.Unix(1700000000, 5)
	dev := &wgtypes.Device{Peers: []wgtypes.Peer{
		{PublicKey: pub(2), Endpoint: udp("[::ffff:198.51.100.2]:51820"), LastHandshakeTime: hs, ReceiveBytes: 10, TransmitBytes: 20},
		{PublicKey: pub(3), LastHandshakeTime: time.Unix(0, 0)},
		{PublicKey: pub(4)},
	}}
	want := []PeerStats{
		{PublicKey: pub(2), Endpoint: mustAddrPort("198.51.100.2:51820"), LastHandshake: hs, RxBytes: 10, TxBytes: 20},
		{PublicKey: pub(3)},
		{PublicKey: pub(4)},
	}
	if diff := cmp.Diff(want, peerStats(dev), cmpKeys); diff != "" {
		t.Errorf("peerStats() mismatch (-want +got):\n%s", diff)
	}
}
