package device

import (
	"encoding/hex"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

func hexk(k wgtypes.Key) string { return hex.EncodeToString(k[:]) }

func TestUAPISet(t *testing.T) {
	tests := []struct {
		name string
		cfg  wgtypes.Config
		want string
	}{
		{name: "empty", cfg: wgtypes.Config{}, want: ""},
		{
			name: "device fields",
			cfg: wgtypes.Config{
				PrivateKey:   ptr(testKey(1)),
				ListenPort:   ptr(51820),
				FirewallMark: ptr(0x51),
				ReplacePeers: true,
			},
			want: "private_key=" + hexk(testKey(1)) + "\n" +
				"listen_port=51820\n" +
				"fwmark=81\n" +
				"replace_peers=true\n",
		},
		{
			name: "new peer",
			cfg: wgtypes.Config{Peers: []wgtypes.PeerConfig{{
				PublicKey:                   pub(2),
				PresharedKey:                ptr(testKey(7)),
				Endpoint:                    udp("198.51.100.2:51820"),
				PersistentKeepaliveInterval: ptr(25 * time.Second),
				ReplaceAllowedIPs:           true,
				AllowedIPs:                  nets("192.168.20.0/24", "10.77.0.2/32"),
			}}},
			want: "public_key=" + hexk(pub(2)) + "\n" +
				"preshared_key=" + hexk(testKey(7)) + "\n" +
				"endpoint=198.51.100.2:51820\n" +
				"persistent_keepalive_interval=25\n" +
				"replace_allowed_ips=true\n" +
				"allowed_ip=10.77.0.2/32\n" +
				"allowed_ip=192.168.20.0/24\n",
		},
		{
			name: "update, remove, IPv6",
			cfg: wgtypes.Config{Peers: []wgtypes.PeerConfig{
				{PublicKey: pub(3), Remove: true, AllowedIPs: nets("10.0.0.1/32")},
				{
					PublicKey:                   pub(4),
					UpdateOnly:                  true,
					Endpoint:                    udp("[2001:db8::1]:443"),
					PersistentKeepaliveInterval: ptr(time.Duration(0)),
					ReplaceAllowedIPs:           true,
					AllowedIPs:                  []net.IPNet{},
				},
			}},
			want: "public_key=" + hexk(pub(3)) + "\n" +
				"remove=true\n" +
				"public_key=" + hexk(pub(4)) + "\n" +
				"update_only=true\n" +
				"endpoint=[2001:db8::1]:443\n" +
				"persistent_keepalive_interval=0\n" +
				"replace_allowed_ips=true\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, uapiSet(tt.cfg)); diff != "" {
				t.Errorf("uapiSet() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// sampleGet is what wireguard-go's IpcGet answers for a device with one
// peer that has had a handshake and one that never had.
func sampleGet() string {
	return "private_key=" + hexk(testKey(1)) + "\n" +
		"listen_port=51820\n" +
		"fwmark=0\n" +
		"public_key=" + hexk(pub(2)) + "\n" +
		"preshared_key=0000000000000000000000000000000000000000000000000000000000000000\n" +
		"protocol_version=1\n" +
		"endpoint=198.51.100.2:51820\n" +
		"last_handshake_time_sec=1700000000\n" +
		"last_handshake_time_nsec=0\n" +
		"tx_bytes=1234\n" +
		"rx_bytes=5678\n" +
		"persistent_keepalive_interval=25\n" +
		"allowed_ip=10.77.0.2/32\n" +
		"allowed_ip=192.168.20.0/24\n" +
		"public_key=" + hexk(pub(3)) + "\n" +
		"protocol_version=1\n" +
		"last_handshake_time_sec=0\n" +
		"last_handshake_time_nsec=0\n" +
		"tx_bytes=0\n" +
		"rx_bytes=0\n" +
		"persistent_keepalive_interval=0\n" +
		"allowed_ip=fd00:77::3/128\n" +
		"errno=0\n" +
		"\n"
}

func TestParseUAPIGet(t *testing.T) {
	want := &wgtypes.Device{
		Type:       wgtypes.Userspace,
		PrivateKey: testKey(1),
		PublicKey:  pub(1),
		ListenPort: 51820,
		Peers: []wgtypes.Peer{
			{
				PublicKey:                   pub(2),
				ProtocolVersion:             1,
				Endpoint:                    udp("198.51.100.2:51820"),
				LastHandshakeTime:           time.Unix(1700000000, 0), // nsec 0 is a real time, not "never"
				TransmitBytes:               1234,
				ReceiveBytes:                5678,
				PersistentKeepaliveInterval: 25 * time.Second,
				AllowedIPs:                  nets("10.77.0.2/32", "192.168.20.0/24"),
			},
			{
				PublicKey:       pub(3),
				ProtocolVersion: 1,
				AllowedIPs:      nets("fd00:77::3/128"),
			},
		},
	}
	got, err := parseUAPIGet(sampleGet())
	if err != nil {
		t.Fatalf("parseUAPIGet() error: %v", err)
	}
	if diff := cmp.Diff(want, got, cmpKeys); diff != "" {
		t.Errorf("parseUAPIGet() mismatch (-want +got):\n%s", diff)
	}
	if !got.Peers[1].LastHandshakeTime.IsZero() {
		t.Errorf("never-handshaked peer has LastHandshakeTime %v, want zero", got.Peers[1].LastHandshakeTime)
	}
}

func TestParseUAPIGetErrors(t *testing.T) {
	secret := hexk(testKey(1))
	tests := []struct {
		name, in, wantErr string
	}{
		{name: "not key=value", in: "listen_port\n", wantErr: "line 1: not key=value"},
		{name: "errno", in: "errno=22\n", wantErr: "errno=22"},
		{name: "short private key", in: "private_key=" + secret[:10] + "\n", wantErr: "bad private_key"},
		{name: "non-hex private key", in: "private_key=" + strings.Repeat("zz", 32) + "\n", wantErr: "bad private_key"},
		{name: "bad port", in: "listen_port=70000\n", wantErr: "bad listen_port"},
		{name: "bad endpoint", in: "public_key=" + hexk(pub(2)) + "\nendpoint=nope\n", wantErr: "line 2: bad endpoint"},
		{name: "bad allowed ip", in: "public_key=" + hexk(pub(2)) + "\nallowed_ip=10.0.0.0/99\n", wantErr: "bad allowed_ip"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseUAPIGet(tt.in)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("parseUAPIGet() = %v, want error containing %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), secret[:10]) {
				t.Fatalf("error quotes key material: %v", err)
			}
		})
	}
}

// The set text and the get parser must agree: what diffConfig sends for a
// fresh device, read back as a device, is that config (the round trip the
// userspace backend relies on to see "no change" the second time).
func TestUAPIRoundTrip(t *testing.T) {
	want := Config{PrivateKey: testKey(1), ListenPort: 51820, Peers: []PeerConfig{{
		PublicKey:           pub(2),
		Endpoint:            mustAddrPort("198.51.100.2:51820"),
		AllowedIPs:          pfx("10.77.0.2/32", "192.168.20.0/24"),
		PersistentKeepalive: 25 * time.Second,
	}}}
	cfg, _ := diffConfig(nil, want)
	// A set body is also valid get syntax for the fields both have.
	dev, err := parseUAPIGet(strings.ReplaceAll(uapiSet(cfg), "replace_allowed_ips=true\n", ""))
	if err != nil {
		t.Fatalf("parse set text: %v", err)
	}
	if cfg, changed := diffConfig(dev, want); changed {
		t.Errorf("round trip still differs: %+v", cfg)
	}
}

func FuzzParseUAPIGet(f *testing.F) {
	f.Add(sampleGet())
	f.Add("public_key=00\n")
	f.Add("allowed_ip=::/0\nendpoint=[::1]:1\n")
	f.Fuzz(func(t *testing.T, s string) {
		d, err := parseUAPIGet(s)
		if err != nil {
			return
		}
		// Whatever parses must render back without panicking.
		cfg, _ := diffConfig(d, Config{PrivateKey: testKey(1)})
		_ = uapiSet(cfg)
	})
}

func mustAddrPort(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }
