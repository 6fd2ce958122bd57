// Package service runs the lanlink agent as a systemd service: it renders a
// hardened unit for one interface (Unit), and installs or removes it as one
// reversible step (Install, Uninstall) through a small Systemd interface
// whose real implementation talks D-Bus and whose fake records calls.
//
// One unit per interface, named lanlink-IFACE.service (not a template
// lanlink@.service): each unit carries its own plan and key paths, and a
// shared template file would make two interfaces overwrite each other's
// settings. The unit is self-contained, so Uninstall removes exactly what
// Install wrote; local changes belong in drop-ins (systemctl edit).
//
// This package must not run the agent or touch the network: it only writes
// one unit file and asks systemd to act on it. It must never overwrite or
// delete a unit file it did not write, and must leave no half-installed
// unit behind: a failed Install undoes its own steps.
package service
