package plan

import (
	"errors"
	"net/netip"
)

var errTODO = errors.New("plan: not implemented yet")

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
