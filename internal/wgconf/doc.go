// Package wgconf reads and writes wg-quick configuration files, so that a
// site of a lanlink plan can be run by the stock wg-quick and wg tools
// (Render) and such files can be read back for round trips, tests and
// import (Parse).
//
// It must not invent network state of its own: everything Render writes is
// derived from a plan.SiteConfig, and the routes wg-quick will add for the
// rendered file are exactly the SiteConfig's routes (Render refuses
// otherwise). It never touches the system and never puts a private key in a
// file unless the caller hands one over explicitly.
package wgconf
