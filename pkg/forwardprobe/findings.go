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
		"`ack_response_timeout`, default 190 s), Fluent Bit [OUTPUT] forward `Require_ack_response On`. Without " +
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
)
