package wanem

import (
	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/tun"
)

const (
	// virtioNetHdrLen is the header in front of every frame read from or
	// written to a TUN opened with IFF_VNET_HDR, as wireguard-go does.
	virtioNetHdrLen = 10
	// rawFrameMax is the largest such frame: header plus a 64 KiB packet.
	rawFrameMax = virtioNetHdrLen + 65535
)

// isVnetHdr reports whether dev carries virtio-net headers, i.e. whether
// wireguard-go negotiated offloads with the kernel: only then does a raw
// frame hold a whole GSO super-packet the kernel can take back as is.
func isVnetHdr(dev tun.Device) bool {
	f := dev.File()
	sc, err := f.SyscallConn()
	if err != nil {
		return false
	}
	var flags uint16
	var ierr error
	if err := sc.Control(func(fd uintptr) {
		var ifr *unix.Ifreq
		if ifr, ierr = unix.NewIfreq(""); ierr != nil {
			return
		}
		ierr = unix.IoctlIfreq(int(fd), unix.TUNGETIFF, ifr)
		flags = ifr.Uint16()
	}); err != nil || ierr != nil {
		return false
	}
	return flags&unix.IFF_VNET_HDR != 0
}

// frameSegments returns how many wire packets a raw frame stands for and
// their IP bytes, for the counters.
func frameSegments(fr []byte) (segs, ipBytes int) {
	if len(fr) <= virtioNetHdrLen {
		return 0, 0
	}
	pkt := fr[virtioNetHdrLen:]
	gsoType := fr[1]
	gsoSize := int(fr[4]) | int(fr[5])<<8 // little-endian, as wireguard-go negotiates
	csumStart := int(fr[6]) | int(fr[7])<<8
	if gsoType == unix.VIRTIO_NET_HDR_GSO_NONE || gsoSize == 0 {
		return 1, len(pkt)
	}
	hdr := csumStart + 8 // UDP
	if gsoType != unix.VIRTIO_NET_HDR_GSO_UDP_L4 {
		if csumStart+12 >= len(pkt) {
			return 1, len(pkt)
		}
		hdr = csumStart + int(pkt[csumStart+12]>>4)*4
	}
	payload := len(pkt) - hdr
	if hdr <= 0 || payload <= 0 {
		return 1, len(pkt)
	}
	segs = (payload + gsoSize - 1) / gsoSize
	return segs, payload + segs*hdr
}
