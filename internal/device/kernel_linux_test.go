package device

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// fakeKernel stands in for rtnetlink and the WireGuard genetlink family:
// it records every call as a line of text and keeps the device state, so
// tests see both what was asked and what it did.
type fakeKernel struct {
	calls []string
	links map[string]string // name → kind
	devs  map[string]*wgtypes.Device
	names map[wgtypes.Key]string // public key → short name in call text

	noWireGuard bool
	failAdd     error
	failSetUp   error
}

func newFakeKernel() *fakeKernel {
	return &fakeKernel{
		links: map[string]string{},
		devs:  map[string]*wgtypes.Device{},
		names: map[wgtypes.Key]string{pub(2): "B", pub(3): "C", pub(4): "D"},
	}
}

func (k *fakeKernel) record(format string, args ...any) {
	k.calls = append(k.calls, fmt.Sprintf(format, args...))
}

// takeCalls returns the calls since the last takeCalls.
func (k *fakeKernel) takeCalls() []string {
	c := k.calls
	k.calls = nil
	return c
}

func (k *fakeKernel) AddWireguard(name string, mtu int) error {
	k.record("link add %s type wireguard mtu %d", name, mtu)
	if k.noWireGuard {
		return fmt.Errorf("create wireguard link %s: %w", name, ErrKernelUnsupported)
	}
	if k.failAdd != nil {
		return k.failAdd
	}
	if _, ok := k.links[name]; ok {
		return syscall.EEXIST
	}
	k.links[name] = "wireguard"
	k.devs[name] = &wgtypes.Device{Name: name, Type: wgtypes.LinuxKernel}
	return nil
}

func (k *fakeKernel) SetUp(name string) error {
	k.record("link set %s up", name)
	return k.failSetUp
}

func (k *fakeKernel) Delete(name string) error {
	k.record("link del %s", name)
	delete(k.links, name)
	delete(k.devs, name)
	return nil
}

func (k *fakeKernel) Kind(name string) (string, bool, error) {
	kind, ok := k.links[name]
	return kind, ok, nil
}

func (k *fakeKernel) Device(name string) (*wgtypes.Device, error) {
	k.record("wg get %s", name)
	d, ok := k.devs[name]
	if !ok {
		return nil, os.ErrNotExist
	}
	c := *d
	c.Peers = slices.Clone(d.Peers)
	return &c, nil
}

func (k *fakeKernel) ConfigureDevice(name string, cfg wgtypes.Config) error {
	d, ok := k.devs[name]
	if !ok {
		return os.ErrNotExist
	}
	var b strings.Builder
	fmt.Fprintf(&b, "wg set %s", name)
	if cfg.PrivateKey != nil {
		b.WriteString(" private-key") // never its value
		d.PrivateKey = *cfg.PrivateKey
		d.PublicKey = d.PrivateKey.PublicKey()
	}
	if cfg.ListenPort != nil {
		fmt.Fprintf(&b, " listen-port %d", *cfg.ListenPort)
		d.ListenPort = *cfg.ListenPort
	}
	for _, pc := range cfg.Peers {
		fmt.Fprintf(&b, " peer %s", k.names[pc.PublicKey])
		i := slices.IndexFunc(d.Peers, func(p wgtypes.Peer) bool { return p.PublicKey == pc.PublicKey })
		if pc.Remove {
			b.WriteString(" remove")
			if i >= 0 {
				d.Peers = slices.Delete(d.Peers, i, i+1)
			}
			continue
		}
		if pc.UpdateOnly {
			b.WriteString(" update-only")
			if i < 0 {
				continue
			}
		}
		if i < 0 {
			d.Peers = append(d.Peers, wgtypes.Peer{PublicKey: pc.PublicKey})
			i = len(d.Peers) - 1
		}
		p := &d.Peers[i]
		if pc.Endpoint != nil {
			fmt.Fprintf(&b, " endpoint %s", pc.Endpoint)
			p.Endpoint = pc.Endpoint
		}
		if pc.PersistentKeepaliveInterval != nil {
			fmt.Fprintf(&b, " persistent-keepalive %d", int(pc.PersistentKeepaliveInterval.Seconds()))
			p.PersistentKeepaliveInterval = *pc.PersistentKeepaliveInterval
		}
		if pc.ReplaceAllowedIPs {
			var ips []string
			for _, n := range pc.AllowedIPs {
				ips = append(ips, n.String())
			}
			fmt.Fprintf(&b, " allowed-ips %s", strings.Join(ips, ","))
			p.AllowedIPs = slices.Clone(pc.AllowedIPs)
		}
	}
	k.calls = append(k.calls, b.String())
	return nil
}

func (k *fakeKernel) Close() error {
	k.record("wg close")
	return nil
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func openFakeKernel(t *testing.T, k *fakeKernel) *kernelDevice {
	t.Helper()
	d, err := openKernelWith(t.Context(), OpenOptions{Name: "wg0", MTU: 1420, Logger: discardLogger()}, k,
		func() (wgClient, error) { return k, nil })
	if err != nil {
		t.Fatalf("openKernelWith() error: %v", err)
	}
	return d
}

func TestKernelDeviceLifecycle(t *testing.T) {
	k := newFakeKernel()
	d := openFakeKernel(t, k)
	base := Config{PrivateKey: testKey(1), ListenPort: 51820, Peers: []PeerConfig{{
		PublicKey:  pub(2),
		Endpoint:   netip.MustParseAddrPort("198.51.100.2:51820"),
		AllowedIPs: pfx("10.77.0.2/32", "192.168.20.0/24"),
	}}}
	withC := base
	withC.Peers = append(slices.Clone(base.Peers), PeerConfig{
		PublicKey: pub(3), AllowedIPs: pfx("10.77.0.3/32"), PersistentKeepalive: 25 * time.Second,
	})
	onlyC := Config{PrivateKey: testKey(1), ListenPort: 51820, Peers: withC.Peers[1:]}

	steps := []struct {
		name string
		do   func() error
		want []string
	}{
		{
			name: "open",
			do:   func() error { return nil },
			want: []string{"link add wg0 type wireguard mtu 1420", "link set wg0 up"},
		},
		{
			name: "first configure sets everything",
			do:   func() error { return d.Configure(base) },
			want: []string{
				"wg get wg0",
				"wg set wg0 private-key listen-port 51820 peer B endpoint 198.51.100.2:51820 allowed-ips 10.77.0.2/32,192.168.20.0/24",
			},
		},
		{
			name: "same config again changes nothing",
			do:   func() error { return d.Configure(base) },
			want: []string{"wg get wg0"},
		},
		{
			name: "added peer does not touch the unchanged one",
			do:   func() error { return d.Configure(withC) },
			want: []string{"wg get wg0", "wg set wg0 peer C persistent-keepalive 25 allowed-ips 10.77.0.3/32"},
		},
		{
			name: "removed peer",
			do:   func() error { return d.Configure(onlyC) },
			want: []string{"wg get wg0", "wg set wg0 peer B remove"},
		},
		{
			name: "stats",
			do: func() error {
				st, err := d.Stats()
				if err != nil {
					return err
				}
				want := []PeerStats{{PublicKey: pub(3)}}
				if diff := cmp.Diff(want, st, cmpKeys); diff != "" {
					return fmt.Errorf("Stats() mismatch (-want +got):\n%s", diff)
				}
				return nil
			},
			want: []string{"wg get wg0"},
		},
		{
			name: "close deletes the link",
			do:   d.Close,
			want: []string{"wg close", "link del wg0"},
		},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if diff := cmp.Diff(s.want, k.takeCalls()); diff != "" {
			t.Fatalf("%s: calls mismatch (-want +got):\n%s", s.name, diff)
		}
	}

	// After Close everything is net.ErrClosed and nothing reaches the OS.
	if err := d.Configure(base); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Configure after Close = %v, want net.ErrClosed", err)
	}
	if _, err := d.Stats(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Stats after Close = %v, want net.ErrClosed", err)
	}
	if err := d.Close(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("second Close = %v, want net.ErrClosed", err)
	}
	if calls := k.takeCalls(); len(calls) != 0 {
		t.Errorf("calls after Close: %q", calls)
	}
}

func TestKernelConfigureRejectsInvalid(t *testing.T) {
	k := newFakeKernel()
	d := openFakeKernel(t, k)
	k.takeCalls()
	if err := d.Configure(Config{}); err == nil || !strings.Contains(err.Error(), "no private key") {
		t.Fatalf("Configure(empty) = %v, want 'no private key' error", err)
	}
	if calls := k.takeCalls(); len(calls) != 0 {
		t.Errorf("invalid config reached the kernel: %q", calls)
	}
}

func TestKernelOpenFailures(t *testing.T) {
	tests := []struct {
		name      string
		setup     func(*fakeKernel)
		clientErr error
		wantIs    error
		wantCalls []string
	}{
		{
			name:      "no WireGuard in the kernel is 'not mine'",
			setup:     func(k *fakeKernel) { k.noWireGuard = true },
			wantIs:    os.ErrNotExist,
			wantCalls: []string{"link add wg0 type wireguard mtu 1420"},
		},
		{
			name:      "permission denied is a real error",
			setup:     func(k *fakeKernel) { k.failAdd = syscall.EPERM },
			wantIs:    syscall.EPERM,
			wantCalls: []string{"link add wg0 type wireguard mtu 1420"},
		},
		{
			name:      "link up fails: link removed again",
			setup:     func(k *fakeKernel) { k.failSetUp = syscall.EBUSY },
			wantIs:    syscall.EBUSY,
			wantCalls: []string{"link add wg0 type wireguard mtu 1420", "link set wg0 up", "wg close", "link del wg0"},
		},
		{
			name:      "wgctrl fails: link removed again",
			setup:     func(*fakeKernel) {},
			clientErr: syscall.EACCES,
			wantIs:    syscall.EACCES,
			wantCalls: []string{"link add wg0 type wireguard mtu 1420", "link del wg0"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := newFakeKernel()
			tt.setup(k)
			_, err := openKernelWith(t.Context(), OpenOptions{Name: "wg0", MTU: 1420, Logger: discardLogger()}, k,
				func() (wgClient, error) {
					if tt.clientErr != nil {
						return nil, tt.clientErr
					}
					return k, nil
				})
			if !errors.Is(err, tt.wantIs) {
				t.Fatalf("openKernelWith() = %v, want error matching %v", err, tt.wantIs)
			}
			if diff := cmp.Diff(tt.wantCalls, k.takeCalls()); diff != "" {
				t.Errorf("calls mismatch (-want +got):\n%s", diff)
			}
			if len(k.links) != 0 {
				t.Errorf("links left behind: %v", k.links)
			}
		})
	}
}

func TestRemoveStale(t *testing.T) {
	tests := []struct {
		name      string
		links     map[string]string
		wantErr   string
		wantCalls []string
	}{
		{name: "absent is fine", links: map[string]string{}},
		{name: "kernel wireguard leftover removed", links: map[string]string{"wg0": "wireguard"}, wantCalls: []string{"link del wg0"}},
		{name: "anything else refused", links: map[string]string{"wg0": "bridge"}, wantErr: "is a bridge link"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := newFakeKernel()
			k.links = tt.links
			err := removeStale(k, "wg0")
			if (err != nil) != (tt.wantErr != "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("removeStale() = %v, want error %q", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.wantCalls, k.takeCalls()); diff != "" {
				t.Errorf("calls mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCheckNameFree(t *testing.T) {
	// listen makes a socket file in dir; live keeps it answering.
	listen := func(t *testing.T, dir, name string, live bool) {
		t.Helper()
		l, err := net.ListenUnix("unix", &net.UnixAddr{Name: dir + "/" + name + ".sock", Net: "unix"})
		if err != nil {
			t.Fatal(err)
		}
		if live {
			t.Cleanup(func() { l.Close() })
			return
		}
		l.SetUnlinkOnClose(false) // what a crashed process leaves behind
		l.Close()
	}
	tests := []struct {
		name        string
		links       map[string]string
		setup       func(t *testing.T, dir string)
		wantErr     error // nil: free
		wantErrText string
		wantSocket  bool // socket file still there afterwards
	}{
		{name: "free", links: map[string]string{}},
		{
			name:    "existing link",
			links:   map[string]string{"wg0": "dummy"},
			wantErr: &InUseError{Name: "wg0", Kind: "dummy"},
		},
		{
			name:    "leftover kernel interface",
			links:   map[string]string{"wg0": "wireguard"},
			wantErr: &InUseError{Name: "wg0", Kind: "wireguard"},
		},
		{
			name:  "stale socket removed",
			links: map[string]string{},
			setup: func(t *testing.T, dir string) { listen(t, dir, "wg0", false) },
		},
		{
			name:       "running wireguard-go elsewhere",
			links:      map[string]string{},
			setup:      func(t *testing.T, dir string) { listen(t, dir, "wg0", true) },
			wantErr:    &InUseError{Name: "wg0", Process: true},
			wantSocket: true,
		},
		{
			name:       "running wireguard-go here",
			links:      map[string]string{"wg0": "tun"},
			setup:      func(t *testing.T, dir string) { listen(t, dir, "wg0", true) },
			wantErr:    &InUseError{Name: "wg0", Kind: "tun", Process: true},
			wantSocket: true,
		},
		{
			name:  "not a socket",
			links: map[string]string{},
			setup: func(t *testing.T, dir string) {
				if err := os.WriteFile(dir+"/wg0.sock", nil, 0o600); err != nil {
					t.Fatal(err)
				}
			},
			wantErrText: "is not a socket",
			wantSocket:  true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if tt.setup != nil {
				tt.setup(t, dir)
			}
			k := newFakeKernel()
			k.links = tt.links
			err := checkNameFree(k, dir, "wg0", discardLogger())
			switch {
			case tt.wantErrText != "":
				if err == nil || !strings.Contains(err.Error(), tt.wantErrText) {
					t.Fatalf("checkNameFree() = %v, want error containing %q", err, tt.wantErrText)
				}
			default:
				if diff := cmp.Diff(tt.wantErr, err, cmp.Comparer(func(a, b error) bool {
					var ia, ib *InUseError
					if errors.As(a, &ia) && errors.As(b, &ib) {
						return *ia == *ib
					}
					return a == b
				})); diff != "" {
					t.Fatalf("checkNameFree() error mismatch (-want +got):\n%s", diff)
				}
			}
			_, statErr := os.Lstat(dir + "/wg0.sock")
			if got := statErr == nil; got != tt.wantSocket {
				t.Errorf("socket file exists = %v, want %v", got, tt.wantSocket)
			}
		})
	}
}
