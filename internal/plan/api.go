package plan

import (
	"errors"
	"net/netip"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

var errTODO = errors.New("plan: not implemented yet")

// Problem is one thing wrong with a plan, located and with a suggested fix.
type Problem struct {
	File  string
	Line  int    // 1-based; 0 if unknown
	Site  string // "" for [network] or the file as a whole
	Field string // TOML key, e.g. "lan"; "" if the problem is not about one field
	Msg   string
	Fix   string // how to fix it; may be ""
}

// Problems is every problem found in a plan, sorted by line. It is the error
// returned by Parse, Load, New and the edit functions when the plan is invalid.
type Problems []Problem

func (ps Problems) Error() string { return "TODO" }

// Load reads and validates the plan file at path.
func Load(path string) (*Plan, error) { return nil, errTODO }

// Parse validates data; filename is used only in error messages.
func Parse(filename string, data []byte) (*Plan, error) { return nil, errTODO }

// New returns the text of a fresh plan file for `lanlink init`.
func New(name string, tunnels []netip.Prefix, port uint16) ([]byte, error) { return nil, errTODO }

// SiteSpec describes a site to add with AddSite.
type SiteSpec struct {
	Name       string
	PublicKey  string
	LANs       []string
	Endpoint   string
	Address    []string // optional explicit tunnel addresses, one per tunnel prefix
	Port       uint16   // 0 = network default
	Masquerade *bool
	MSSClamp   *bool
}

// SiteChange is an edit of an existing site; nil fields are left unchanged.
type SiteChange struct {
	Endpoint   *string
	LANs       []string // nil = unchanged
	PublicKey  *string
	Port       *uint16
	Masquerade *bool
	MSSClamp   *bool
}

// AddSite appends a site to the plan text.
func AddSite(filename string, data []byte, s SiteSpec) (out []byte, added *Site, err error) {
	return nil, nil, errTODO
}

// SetSite changes fields of an existing site in the plan text.
func SetSite(filename string, data []byte, name string, c SiteChange) ([]byte, error) {
	return nil, errTODO
}

// RemoveSite deletes a site from the plan text.
func RemoveSite(filename string, data []byte, name string) ([]byte, error) { return nil, errTODO }

// Site returns the site with the given name.
func (p *Plan) Site(name string) (*Site, bool) { return nil, false }

// SiteByKey returns the site with the given public key.
func (p *Plan) SiteByKey(k wgtypes.Key) (*Site, bool) { return nil, false }

// SiteConfig derives the desired state of the named site.
func (p *Plan) SiteConfig(name string) (*SiteConfig, error) { return nil, errTODO }

// Equal reports whether c and o describe the same desired state.
func (c *SiteConfig) Equal(o *SiteConfig) bool { return false }

// Clone returns a deep copy of c.
func (c *SiteConfig) Clone() *SiteConfig { return nil }
