package forwardprobe

// Finding ids (stable API, documented in docs/commands/forward.md).
const (
	FindingConnectFailed     = "forward.connect_failed"
	FindingAuthFailed        = "forward.auth_failed"
	FindingHandshakeRequired = "forward.handshake_required"
	FindingNoAck             = "forward.no_ack"
	FindingAckMismatch       = "forward.ack_mismatch"
	FindingClosedBeforeAck   = "forward.closed_before_ack"
	FindingSlowAck           = "forward.slow_ack"
	FindingHeartbeatFailed   = "forward.heartbeat_failed"
	// FindingTLSRequired: a plaintext probe reached a port that expects TLS.
	FindingTLSRequired = "forward.tls_required"
	// FindingHandshakeNotRequired: a shared key was given and the server
	// sent no HELO.
	FindingHandshakeNotRequired = "forward.handshake_not_required"
)

// Remedies name the settings on both common senders and receivers.
const (
	remedyConnect = "Check the address and port, that the receiver is running and listening there " +
		"(Fluentd in_forward `port`/`bind`; Fluent Bit [INPUT] forward `Listen`/`Port`), and that no firewall, " +
		"NetworkPolicy or Kubernetes Service port is in the way. With TLS, the sender's CA (out_forward " +
		"`tls_cert_path`, Fluent Bit `tls.ca_file`) must trust the receiver's certificate."
	remedyAuth = "Make the sender's credentials match the receiver's: Fluentd in_forward <security> " +
		"`shared_key`/`self_hostname` and <user> `username`/`password` (with `user_auth true`) against " +
		"out_forward <security> `shared_key`/`self_hostname` and <server> `username`/`password`; Fluent Bit " +
		"[OUTPUT] forward `Shared_Key`, `Self_Hostname`, `Username`, `Password`. The two self_hostname values must differ."
	remedyHandshake = "The receiver has a <security> section and sent HELO: give the probe --shared-key (and " +
		"--username/--password when user_auth is on). Senders need the same key: out_forward <security> " +
		"`shared_key`, Fluent Bit [OUTPUT] forward `Shared_Key`."
	remedyNoAck = "The receiver took the bytes but never acknowledged the chunk. Senders must run with acks on " +
		"so they notice and retry: Fluentd out_forward `require_ack_response true` (retry after " +
		"`ack_response_timeout`, default 190 s), Fluent Bit [OUTPUT] forward `Require_ack_response On` together " +
		"with `net.io_timeout` (e.g. 30s; its default 0 makes Fluent Bit wait for the ack forever, logging nothing, " +
		"so the chunk is never retried) and a `Retry_Limit` above its default 1 (or `no_limits`). Without " +
		"acks the sender deletes the chunk once the kernel accepted it: silent loss. Then fix the receiver: " +
		"in_forward acks only after events reach its output buffer, so a full buffer (`overflow_action`, " +
		"`total_limit_size`), a hung process or a proxy that accepts and discards are the usual causes."
	remedyMismatch = "The ack names a different chunk than the one sent, so senders treat the chunk as " +
		"unacknowledged and retry it (duplicates downstream). Look for a proxy or load balancer that multiplexes " +
		"connections, or a receiver that is not a conforming forward implementation; point out_forward/Fluent Bit " +
		"directly at in_forward."
	remedyClosed = "The receiver closed the connection after the chunk without acking it. Check its log for " +
		"rejected requests (in_forward `chunk_size_limit`, invalid events, shared-key errors), restarts, and " +
		"load balancer idle or connection limits. With `require_ack_response` (Fluent Bit `Require_ack_response On`) " +
		"the sender retries; without it the chunk may be lost."
	remedySlowAck = "Acks arrive slowly: raise the sender's `ack_response_timeout` (out_forward, default 190 s) well " +
		"above the p99 seen here, or the sender will retry chunks that were in fact delivered (duplicates). Then " +
		"find what slows the receiver's buffer: output `flush_thread_count`, `chunk_limit_size`, a slow " +
		"Elasticsearch bulk endpoint; Fluent Bit: `Workers`, `storage.type filesystem`."
	remedyHeartbeat = "The port does not answer UDP heartbeats. Senders with out_forward `heartbeat_type udp` will " +
		"mark this node unavailable (phi_threshold, hard_timeout). Open UDP on the port (Fluentd in_forward serves " +
		"it; Kubernetes Services need a separate UDP port entry) or use `heartbeat_type transport` (the default " +
		"since Fluentd v1) or `none`."
	remedyHeartbeatFluentBit = "Nothing to fix on Fluent Bit: its forward input has no UDP heartbeat. A Fluentd " +
		"out_forward sending to it must not use `heartbeat_type udp` (it would mark this node unavailable): keep the " +
		"default `heartbeat_type transport`, or `none`. Fluent Bit's own forward output sends no heartbeats."
	remedyHeartbeatEither = "Only Fluentd out_forward senders with `heartbeat_type udp` depend on this (they mark " +
		"the node unavailable); the default `heartbeat_type transport` checks over TCP, which works. Against Fluent " +
		"Bit, whose forward input has no UDP heartbeat, use `transport` or `none`. Against Fluentd's in_forward " +
		"(which answers on its port), open UDP on the port (a Kubernetes Service needs a separate UDP port entry)."
	remedyTLSRequired = "The receiver's forward input runs TLS (Fluentd in_forward `<transport tls>`, Fluent Bit " +
		"[INPUT] forward `tls on`), and it cuts off plaintext connections without an answer. Senders must use TLS " +
		"too: Fluentd out_forward `transport tls` with `tls_cert_path` (the CA) and `tls_verify_hostname`; Fluent " +
		"Bit [OUTPUT] forward `tls on` with `tls.ca_file` and `tls.verify`. With acks a plaintext sender retries " +
		"forever; without them its chunks are lost."
	remedyNoHelo = "A sender with a shared key waits for the receiver's HELO before it sends anything, so Fluentd " +
		"out_forward with `<security> shared_key` and Fluent Bit [OUTPUT] forward with `Shared_Key` deliver nothing " +
		"here. Either give the receiver the key (Fluentd in_forward `<security>` `shared_key`/`self_hostname`; " +
		"Fluent Bit [INPUT] forward `Shared_Key`, `Self_Hostname`) or remove it from the senders. They wait " +
		"silently; only when the connection closes does Fluent Bit log \"handshake error expecting HELO\" and Fluentd " +
		"\"failed to establish connection with node\". Without a key, anyone who reaches the port can write to it."
)
