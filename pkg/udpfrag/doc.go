// Package udpfrag finds the UDP fragmentation black hole. It reassembles
// IPv4 and IPv6 fragments from the frames pkg/pcap reads or captures, as
// the kernel would, classifies every UDP datagram (unfragmented,
// fragmented_complete, fragmented_incomplete, orphan_fragments,
// bad_length, snap_truncated), and turns the counts, the sizes against the
// path MTU and the kernel's own counters (/proc/net/snmp, /proc/net/udp)
// into findings. It owns the udp.* finding ids and their remedies, which
// the probe sweep in pkg/udpprobe reports too.
package udpfrag
