// Package firewall keeps the nftables rules a site asks for in the plan —
// masquerade and TCP MSS clamping on the tunnel interface — in one table
// that lanlink owns: "inet lanlink_<interface>", the same table the
// wg-quick files from `lanlink render` create, so both behave alike.
//
// Masquerade: packets that arrive from the tunnel and leave into any other
// interface (the LAN) get the gateway's own address on that interface as
// their source. A LAN host then answers the gateway, which is on its own
// subnet, and the gateway un-NATs the reply back into the tunnel, so the
// LAN's router needs no route back to the remote LANs for connections that
// other sites open into this LAN. It does not help the other direction:
// a LAN host that opens a connection to a remote LAN still sends it to its
// default router, which must route the remote LANs to the gateway (or the
// host needs that route itself). The price is that LAN hosts see the
// gateway instead of the real remote source address.
//
// MSS clamping: TCP SYN and SYN-ACK packets forwarded into or out of the
// tunnel get their MSS option lowered to what the route they take allows
// (nft `rt mtu`), so TCP through the tunnel works even where ICMP
// "fragmentation needed" is filtered (an MTU black hole). It follows the
// route MTU, so it needs no MTU setting of its own.
//
// Repair notices when the table is gone or changed (nft flush ruleset,
// a reload of nftables.service) and rebuilds it; it compares a cheap
// fingerprint first, so a healthy table costs a few netlink reads.
//
// What this package must not do: touch any table but its own (it never
// flushes the ruleset), or open forwarding that another table drops — its
// chains accept by default, and in nftables an accept in one base chain
// does not override a drop in another, so a host whose FORWARD policy drops
// stays that way (`lanlink doctor` reports it). It never shells out to nft.
package firewall
