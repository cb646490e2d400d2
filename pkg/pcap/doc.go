// Package pcap is logdoctor's packet source: it reads pcap and pcapng
// files (streamed, corrupt records counted and skipped), writes classic
// pcap, captures live on AF_PACKET sockets of its own (pure Go, no
// libpcap) behind a kernel BPF filter for UDP to some ports plus every IP
// fragment, decodes a frame's IPv4/IPv6 and UDP headers without
// allocating, and synthesises fragmented datagrams for tests and
// benchmarks. It knows nothing of what the packets mean: the UDP
// fragmentation diagnosis lives in pkg/udpfrag.
package pcap
