package devicetest

import (
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"lanlink/internal/device"
)

var cmpOpts = cmp.Options{
	cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b }),
	cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }),
	cmp.Transformer("key", func(k wgtypes.Key) string { return k.String() }),
}

func key(t *testing.T) wgtypes.Key {
	t.Helper()
	k, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestFake(t *testing.T) {
	f := New("wg-test")
	var d device.Device = f
	if d.Name() != "wg-test" || d.Backend() != device.BackendUserspace {
		t.Fatalf("Name/Backend = %q/%q", d.Name(), d.Backend())
	}
	if _, ok := f.Current(); ok {
		t.Fatal("Current() reports a config before any Configure")
	}

	peer := key(t).PublicKey()
	cfg := device.Config{PrivateKey: key(t), ListenPort: 51820, Peers: []device.PeerConfig{{
		PublicKey:  peer,
		Endpoint:   netip.MustParseAddrPort("198.51.100.2:51820"),
		AllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.77.0.2/32")},
	}}}
	if err := d.Configure(cfg); err != nil {
		t.Fatal(err)
	}
	// Mutating the caller's config must not change what was recorded.
	want := cfg
	want.Peers = []device.PeerConfig{cfg.Peers[0]}
	want.Peers[0].AllowedIPs = []netip.Prefix{netip.MustParsePrefix("10.77.0.2/32")}
	cfg.Peers[0].AllowedIPs[0] = netip.MustParsePrefix("10.99.0.0/16")
	if diff := cmp.Diff([]device.Config{want}, f.Configs(), cmpOpts); diff != "" {
		t.Errorf("Configs() mismatch (-want +got):\n%s", diff)
	}

	st, err := d.Stats()
	if err != nil {
		t.Fatal(err)
	}
	wantStats := []device.PeerStats{{PublicKey: peer, Endpoint: netip.MustParseAddrPort("198.51.100.2:51820")}}
	if diff := cmp.Diff(wantStats, st, cmpOpts); diff != "" {
		t.Errorf("derived Stats() mismatch (-want +got):\n%s", diff)
	}
	set := []device.PeerStats{{PublicKey: peer, LastHandshake: time.Unix(1700000000, 0), RxBytes: 5, TxBytes: 7}}
	f.SetStats(set)
	if st, _ := d.Stats(); !cmp.Equal(set, st, cmpOpts) {
		t.Errorf("Stats() after SetStats = %+v, want %+v", st, set)
	}

	boom := errors.New("boom")
	f.SetConfigureError(boom)
	if err := d.Configure(cfg); !errors.Is(err, boom) {
		t.Errorf("Configure with error set = %v, want boom", err)
	}
	if n := len(f.Configs()); n != 1 {
		t.Errorf("failed Configure was recorded: %d configs", n)
	}
	f.SetStatsError(boom)
	if _, err := d.Stats(); !errors.Is(err, boom) {
		t.Errorf("Stats with error set = %v, want boom", err)
	}

	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if !f.Closed() {
		t.Error("Closed() = false after Close")
	}
	for name, err := range map[string]error{
		"Configure": d.Configure(cfg),
		"Close":     d.Close(),
	} {
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("%s after Close = %v, want net.ErrClosed", name, err)
		}
	}
	f.SetStatsError(nil)
	if _, err := d.Stats(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Stats after Close = %v, want net.ErrClosed", err)
	}
}
