package plan

// SiteSpec describes a site to add with AddSite. Values are strings as the
// user typed them so that validation can report them in its own words.
type SiteSpec struct {
	Name      string
	PublicKey string
	LANs      []string
	Endpoint  string // "" = behind NAT, no endpoint
	// Address holds explicit tunnel addresses, one per tunnel prefix; nil
	// lets AddSite allocate the lowest free ones.
	Address    []string
	Port       uint16 // 0 = the network's port
	Masquerade *bool  // nil = not written (false)
	MSSClamp   *bool  // nil = not written (false)
}

// SiteChange is an edit of an existing site for SetSite; nil fields are
// left unchanged.
type SiteChange struct {
	Endpoint   *string  // "" removes the endpoint (site is behind NAT)
	LANs       []string // nil = unchanged; empty non-nil = no LANs
	PublicKey  *string
	Port       *uint16 // 0 removes the site's own port (network port applies)
	Masquerade *bool
	MSSClamp   *bool
}
