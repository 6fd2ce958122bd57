package cli

import (
	"bytes"
	"fmt"
	"net/netip"
	"time"

	"github.com/spf13/cobra"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"lanlink/internal/keys"
	"lanlink/internal/plan"
	"lanlink/internal/wgconf"
)

func newRenderCmd(e *env) *cobra.Command {
	var (
		keyFile, keyPath, iface string
		asJSON                  bool
	)
	cmd := &cobra.Command{
		Use:   "render SITE [--key FILE] [--interface NAME] [--json]",
		Short: "Print a site's configuration as a wg-quick file (or JSON)",
		Long: `Print a site's configuration as a wg-quick file for the stock tools: the
same peers, allowed IPs and routes lanlink itself uses.

Without --key the file holds no secret: a PostUp line loads the private key
from the key file on the gateway (--key-path). With --key the key is read
from that file and embedded; keep such a file 0600.

--json prints the site's derived configuration instead (never a key).`,
		Example: "  lanlink render alpha > /etc/wireguard/lanlink0.conf && wg-quick up lanlink0",
		Args:    args("SITE"),
		RunE: func(cmd *cobra.Command, a []string) error {
			if asJSON && keyFile != "" {
				return usagef("render: --json never includes the private key; drop --key")
			}
			p, err := e.loadPlan()
			if err != nil {
				return err
			}
			if _, ok := p.Site(a[0]); !ok {
				return fmt.Errorf("render: no site %q in %s; `lanlink site list` shows the sites", a[0], e.planPath)
			}
			c, err := p.SiteConfig(a[0])
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(e, siteConfigJSON(c))
			}
			o := wgconf.Options{Interface: iface, KeyFile: keyPath}
			if keyFile != "" {
				k, err := keys.Load(keyFile)
				if err != nil {
					return err
				}
				o.PrivateKey = &k
			}
			// Render fully before writing, so a failure prints nothing.
			var buf bytes.Buffer
			if err := wgconf.Render(&buf, c, o); err != nil {
				return err
			}
			_, err = e.stdout.Write(buf.Bytes())
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&keyFile, "key", "", "embed the private key from this file")
	f.StringVar(&keyPath, "key-path", keys.DefaultPath, "key file the PostUp line loads on the gateway (without --key)")
	f.StringVar(&iface, "interface", wgconf.DefaultInterface, "interface name the file is meant for (wg-quick names it after the file)")
	f.BoolVar(&asJSON, "json", false, "print the derived site configuration as JSON")
	return cmd
}

// The JSON forms of plan.SiteConfig and plan.Peer: keys as base64 strings
// (wgtypes.Key has no text form of its own) and keepalive in seconds.
type siteConfigView struct {
	Network    string         `json:"network"`
	Site       string         `json:"site"`
	PublicKey  string         `json:"public_key"`
	Addresses  []netip.Prefix `json:"addresses"`
	ListenPort int            `json:"listen_port"`
	MTU        int            `json:"mtu"`
	Peers      []peerView     `json:"peers"`
	Routes     []netip.Prefix `json:"routes"`
	Relay      bool           `json:"relay,omitempty"`
	Masquerade bool           `json:"masquerade,omitempty"`
	MSSClamp   bool           `json:"mss_clamp,omitempty"`
}

type peerView struct {
	Site                string         `json:"site"`
	PublicKey           string         `json:"public_key"`
	Endpoint            string         `json:"endpoint,omitempty"`
	AllowedIPs          []netip.Prefix `json:"allowed_ips"`
	PersistentKeepalive int            `json:"persistent_keepalive,omitempty"` // seconds
	LANs                []netip.Prefix `json:"lans"`
	Via                 []string       `json:"via,omitempty"`
}

func siteConfigJSON(c *plan.SiteConfig) siteConfigView {
	v := siteConfigView{
		Network: c.Network, Site: c.Site, PublicKey: keyString(c.PublicKey),
		Addresses: nonNil(c.Addresses), ListenPort: c.ListenPort, MTU: c.MTU,
		Peers: []peerView{}, Routes: nonNil(c.Routes),
		Relay: c.Relay, Masquerade: c.Masquerade, MSSClamp: c.MSSClamp,
	}
	for _, p := range c.Peers {
		v.Peers = append(v.Peers, peerView{
			Site: p.Site, PublicKey: keyString(p.PublicKey), Endpoint: p.Endpoint,
			AllowedIPs:          nonNil(p.AllowedIPs),
			PersistentKeepalive: int((p.PersistentKeepalive + time.Second - 1) / time.Second),
			LANs:                nonNil(p.LANs), Via: p.Via,
		})
	}
	return v
}

func keyString(k wgtypes.Key) string { return k.String() }

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
