// Package forward implements the Fluentd Forward protocol v1 on both sides:
// the codec, a streaming server and a client.
//
// # Wire format
//
// A request is one msgpack array in one of four modes (see Mode):
//
//	Message                  [tag, time, record, option?]
//	Forward                  [tag, [[time, record], ...], option?]
//	PackedForward            [tag, bin|str (concatenated [time, record]), option?]
//	CompressedPackedForward  as PackedForward, gzip'ed, option compressed: "gzip"
//
// time is an EventTime (msgpack ext type 0: big-endian uint32 seconds and
// nanoseconds) or a plain integer of seconds; option may carry size, chunk
// and compressed. When chunk is set the receiver answers {"ack": chunk}
// once it has taken responsibility for the events. A bare JSON array
// ([tag, time, record, option?] or [tag, [[time, record]...], option?]) is
// accepted on the same port, as Fluentd does, and is acked in JSON.
//
// # Server
//
// Server reads requests from each connection with a streaming Decoder and
// hands them to a Handler:
//
//	type Handler interface {
//		HandleForward(ctx context.Context, peer net.Addr, req *Request) error
//	}
//
// The ack is sent only when HandleForward returns nil and the request
// carried a chunk; on error no ack is sent and the connection stays open, so
// the sender times out and retries the same chunk (errors wrapping
// ErrCloseConnection close it instead). Entry.Record holds the raw msgpack
// map bytes of each record (records are not decoded on the hot path; use
// RecordToJSON or msgpack to look inside). Request and its Record slices
// point into the connection's read buffer and are valid only until
// HandleForward returns: copy what you keep.
//
// The Decoder walks the msgpack structure of each frame as bytes arrive and
// checks every declared length (array, map, str, bin, ext, nesting depth,
// frame size, decompressed size; see Limits) before anything is allocated
// from it, so a frame declaring a 4 GiB array fails at its header. A
// malformed or oversized request ends that one connection with an error;
// other connections are unaffected. A well-formed value that is not a
// request (a bare JSON object) is dropped with a warning and the connection
// kept, as Fluentd does (ErrNotRequest).
//
// With SharedKey (and optionally Users) set, the server starts each
// connection with the HELO/PING/PONG handshake (SHA-512 digests as in
// Fluentd's in_forward <security>). TLSConfig wraps connections in TLS, and
// ServeHeartbeat answers UDP heartbeats (0x00 -> 0x00) on a PacketConn.
//
// # Client
//
// Dial connects (injectable Resolver and Dialer, optional TLS), performs the
// handshake when the server sends HELO, and times each step (Trace). Conn.Send
// writes a request and, when it carries a chunk, waits for the ack and compares
// the echoed chunk byte for byte. NewChunkID makes the 16-random-byte base64
// chunk ids.
package forward
