package cli

import (
	"net/netip"

	"github.com/logdoctor/logdoctor/pkg/forwardprobe"
	"github.com/logdoctor/logdoctor/pkg/sockstat"
)

// procSocketInspector reads the probe's own socket from /proc/net/tcp{,6}
// (pkg/sockstat): its Send-Q and state, and, when the receiver runs on this
// host, the receiver's Recv-Q, which tells "the peer's kernel has the bytes
// but the process does not read" from "the bytes never left".
func procSocketInspector() forwardprobe.SocketInspector {
	return socketInspector("/proc")
}

func socketInspector(procRoot string) forwardprobe.SocketInspector {
	return func(local, remote netip.AddrPort) (forwardprobe.SocketSample, bool) {
		socks, _, err := sockstat.ReadTCP(procRoot)
		if err != nil {
			return forwardprobe.SocketSample{}, false
		}
		s, ok := sockstat.Find(socks, local, remote)
		if !ok {
			return forwardprobe.SocketSample{}, false
		}
		out := forwardprobe.SocketSample{SendQ: int(s.SendQ), RecvQ: int(s.RecvQ), State: s.State.String(), PeerRecvQ: -1}
		if peer, ok := sockstat.Find(socks, remote, local); ok {
			out.PeerRecvQ = int(peer.RecvQ)
		}
		return out, true
	}
}
