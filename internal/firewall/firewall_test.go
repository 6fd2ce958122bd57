package firewall

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestRender(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"nothing", Config{Interface: "lanlink0"}, ""},
		{"masquerade", Config{Interface: "lanlink0", Masquerade: true}, `table inet lanlink_lanlink0 {
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		iifname "lanlink0" oifname != "lanlink0" masquerade
	}
}
`},
		{"clamp", Config{Interface: "wg-b", MSSClamp: true}, `table inet lanlink_wg-b {
	chain forward {
		type filter hook forward priority mangle; policy accept;
		oifname "wg-b" tcp flags syn tcp option maxseg size set rt mtu
		iifname "wg-b" tcp flags syn tcp option maxseg size set rt mtu
	}
}
`},
		{"both", Config{Interface: "lanlink0", Masquerade: true, MSSClamp: true}, `table inet lanlink_lanlink0 {
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		iifname "lanlink0" oifname != "lanlink0" masquerade
	}

	chain forward {
		type filter hook forward priority mangle; policy accept;
		oifname "lanlink0" tcp flags syn tcp option maxseg size set rt mtu
		iifname "lanlink0" tcp flags syn tcp option maxseg size set rt mtu
	}
}
`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, Render(tc.cfg)); diff != "" {
				t.Errorf("Render(%+v) (-want +got):\n%s", tc.cfg, diff)
			}
			if got, want := tc.cfg.Empty(), tc.want == ""; got != want {
				t.Errorf("Empty() = %t, want %t", got, want)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		iface   string
		wantErr string
	}{
		{"lanlink0", ""},
		{"", "no interface name"},
		{"abcdefghijklmnop", "not a valid interface name"},
		{`a"b`, "not a valid interface name"},
		{"a b", "not a valid interface name"},
	} {
		t.Run(tc.iface, func(t *testing.T) {
			err := Config{Interface: tc.iface, Masquerade: true}.Validate()
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("Validate: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("Validate = %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
}
