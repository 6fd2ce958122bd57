// Package plan is the lanlink network file ("the plan"): its types, parsing,
// validation, tunnel address allocation, text-preserving edits and the
// derivation of each site's desired state (SiteConfig).
//
// It is pure and OS-independent: it never touches the network, the file
// system (except Load reading the plan file) or key files, and it never sees
// a private key. Everything that configures a machine starts from a *Plan
// produced here, so all validation lives here and callers may trust a *Plan.
package plan
