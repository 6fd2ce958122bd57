package device

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// The WireGuard cross-platform userspace protocol
// (https://www.wireguard.com/xplatform/) is spoken in-process with
// wireguard-go's Device.IpcSet/IpcGet rather than through the UAPI socket:
// it needs no file system path (an admin deleting the socket must not
// break reloads), no connection per call, and no second parser of
// errno lines.

// uapiSet renders cfg as the body of a UAPI "set=1" operation, the form
// Device.IpcSet takes: key=value lines, without the "set=1" header and the
// terminating blank line. Keys are hex, as the protocol wants; the result
// holds the private key when cfg sets one, so it must never be logged.
func uapiSet(cfg wgtypes.Config) string {
	var b strings.Builder
	if cfg.PrivateKey != nil {
		fmt.Fprintf(&b, "private_key=%s\n", hex.EncodeToString(cfg.PrivateKey[:]))
	}
	if cfg.ListenPort != nil {
		fmt.Fprintf(&b, "listen_port=%d\n", *cfg.ListenPort)
	}
	if cfg.FirewallMark != nil {
		fmt.Fprintf(&b, "fwmark=%d\n", *cfg.FirewallMark)
	}
	if cfg.ReplacePeers {
		b.WriteString("replace_peers=true\n")
	}
	for _, p := range cfg.Peers {
		fmt.Fprintf(&b, "public_key=%s\n", hex.EncodeToString(p.PublicKey[:]))
		if p.Remove {
			// Anything else about a removed peer is meaningless.
			b.WriteString("remove=true\n")
			continue
		}
		if p.UpdateOnly {
			b.WriteString("update_only=true\n")
		}
		if p.PresharedKey != nil {
			fmt.Fprintf(&b, "preshared_key=%s\n", hex.EncodeToString(p.PresharedKey[:]))
		}
		if p.Endpoint != nil {
			fmt.Fprintf(&b, "endpoint=%s\n", addrPortOf(p.Endpoint))
		}
		if p.PersistentKeepaliveInterval != nil {
			fmt.Fprintf(&b, "persistent_keepalive_interval=%d\n", int(p.PersistentKeepaliveInterval.Seconds()))
		}
		if p.ReplaceAllowedIPs {
			b.WriteString("replace_allowed_ips=true\n")
		}
		for _, pfx := range normPrefixes(prefixesOf(p.AllowedIPs)) {
			fmt.Fprintf(&b, "allowed_ip=%s\n", pfx)
		}
	}
	return b.String()
}

// parseUAPIGet parses the answer to a UAPI "get=1" operation (as returned
// by Device.IpcGet, or read from the socket up to the blank line) into a
// wgtypes.Device. Unknown keys are ignored, as the protocol asks; a
// handshake time of 0 seconds and 0 nanoseconds means "never" and stays
// the zero time.Time.
func parseUAPIGet(s string) (*wgtypes.Device, error) {
	d := &wgtypes.Device{Type: wgtypes.Userspace}
	var peer *wgtypes.Peer
	var hsSec, hsNsec int64
	finishPeer := func() {
		if peer != nil && (hsSec != 0 || hsNsec != 0) {
			peer.LastHandshakeTime = time.Unix(hsSec, hsNsec)
		}
		hsSec, hsNsec = 0, 0
	}
	sc := bufio.NewScanner(strings.NewReader(s))
	for line := 1; sc.Scan(); line++ {
		text := sc.Text()
		if text == "" {
			break
		}
		key, value, ok := strings.Cut(text, "=")
		if !ok {
			return nil, fmt.Errorf("uapi get: line %d: not key=value", line)
		}
		// Errors quote the key but never the value: it may be a key.
		bad := func(err error) error {
			return fmt.Errorf("uapi get: line %d: bad %s: %w", line, key, err)
		}
		if key == "errno" {
			n, err := strconv.Atoi(value)
			if err != nil {
				return nil, bad(err)
			}
			if n != 0 {
				return nil, fmt.Errorf("uapi get: device answered errno=%d", n)
			}
			continue
		}
		if key == "public_key" {
			finishPeer()
			k, err := parseHexKey(value)
			if err != nil {
				return nil, bad(err)
			}
			d.Peers = append(d.Peers, wgtypes.Peer{PublicKey: k})
			peer = &d.Peers[len(d.Peers)-1]
			continue
		}
		var err error
		if peer == nil {
			switch key {
			case "private_key":
				d.PrivateKey, err = parseHexKey(value)
				d.PublicKey = d.PrivateKey.PublicKey()
			case "listen_port":
				d.ListenPort, err = parseUint(value, 16)
			case "fwmark":
				d.FirewallMark, err = parseUint(value, 32)
			}
		} else {
			switch key {
			case "preshared_key":
				peer.PresharedKey, err = parseHexKey(value)
			case "endpoint":
				var ap netip.AddrPort
				ap, err = netip.ParseAddrPort(value)
				if err == nil {
					peer.Endpoint = net.UDPAddrFromAddrPort(normAddrPort(ap))
				}
			case "last_handshake_time_sec":
				hsSec, err = strconv.ParseInt(value, 10, 64)
			case "last_handshake_time_nsec":
				hsNsec, err = strconv.ParseInt(value, 10, 64)
			case "tx_bytes":
				peer.TransmitBytes, err = strconv.ParseInt(value, 10, 64)
			case "rx_bytes":
				peer.ReceiveBytes, err = strconv.ParseInt(value, 10, 64)
			case "persistent_keepalive_interval":
				var n int
				n, err = parseUint(value, 16)
				peer.PersistentKeepaliveInterval = time.Duration(n) * time.Second
			case "allowed_ip":
				var p netip.Prefix
				p, err = netip.ParsePrefix(value)
				if err == nil {
					peer.AllowedIPs = append(peer.AllowedIPs, ipNets([]netip.Prefix{p.Masked()})...)
				}
			case "protocol_version":
				peer.ProtocolVersion, err = parseUint(value, 32)
			}
		}
		if err != nil {
			return nil, bad(err)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("uapi get: %w", err)
	}
	finishPeer()
	return d, nil
}

func parseHexKey(s string) (wgtypes.Key, error) {
	b, err := hex.DecodeString(s)
	if err != nil {
		return wgtypes.Key{}, fmt.Errorf("key is not hex")
	}
	return wgtypes.NewKey(b)
}

func parseUint(s string, bits int) (int, error) {
	n, err := strconv.ParseUint(s, 10, bits)
	return int(n), err
}
