package esprobe

// Finding ids of es probe and es dups: stable API, documented in
// docs/commands/es.md.
const (
	FindingUnreachable       = "es.unreachable"
	FindingAuthFailed        = "es.auth_failed"
	FindingClusterHealth     = "es.cluster_health"
	FindingSniffUnreachable  = "es.sniff_unreachable"
	FindingKeepaliveClosed   = "es.keepalive_closed"
	FindingConnectionChurn   = "es.connection_churn"
	FindingWriteRejections   = "es.write_rejections"
	FindingWriteBlocked      = "es.write_blocked"
	FindingIndexingPressure  = "es.indexing_pressure"
	FindingBulkTooLarge      = "es.bulk_too_large"
	FindingRequestTimeout    = "es.request_timeout_tight"
	FindingBulkNotIdempotent = "es.bulk_not_idempotent"
	FindingBulkLost          = "es.bulk_lost"
	FindingDuplicates        = "es.duplicates"
	FindingDupsIncomplete    = "es.dups_incomplete"
	FindingProductCheck      = "es.product_check"
)

// rejectionCost ends every es.write_rejections summary: what a rejected
// item costs is the shipper's doing, and the two common ones differ
// (checked against both in internal/interop).
const rejectionCost = "; fluent-plugin-elasticsearch resends the whole chunk (duplicates without a stable _id), " +
	"Fluent Bit drops the rejected items of a bulk that partly succeeded (loss, not duplicates)"

// Remedies name the shipper settings; they are long on purpose, since the
// remedy is the line a person acts on.
const (
	remedyUnreachable = "Check the address the shipper uses: fluent-plugin-elasticsearch `host`/`port`/`scheme` (or `hosts`), " +
		"Fluent Bit es output `Host`/`Port`/`tls`. Check DNS, firewalls and proxies between this host and the cluster; run this probe " +
		"from the shipper's network namespace (kubectl debug --target) so it sees what the shipper sees."
	remedyAuth = "Fix the credentials the shipper sends: fluent-plugin-elasticsearch `user`/`password` (or `api_key`), " +
		"Fluent Bit `HTTP_User`/`HTTP_Passwd` (or `Cloud_Auth`); the user needs the `create_doc`/`index` privilege on the target indices " +
		"and `monitor` for the probe's stats."
	remedySniff = "A shipper that sniffs replaces its connection pool with these addresses and then stalls: logs stop reaching Elasticsearch " +
		"(docs/troubleshooting.md). " +
		"Fluentd 1.16 with fluent-plugin-elasticsearch 5.2.5 and elasticsearch-transport 7.17 logs \"could not push logs to Elasticsearch " +
		"cluster\" with \"Connection refused - connect(2) for HOST:PORT\" (the sniffed address), then \"undefined method `host' for " +
		"nil:NilClass\" once its only connection is marked dead, or \"Cannot get new connection from pool.\" when the sniff published " +
		"no address (older transports say that in every case). fluent-plugin-elasticsearch: set `reload_connections false` " +
		"(default true: it re-sniffs _nodes/http every 10,000 requests), keep `reload_on_failure false`, set `reconnect_on_error true`, " +
		"or use `sniffer_class_name Fluent::Plugin::ElasticsearchSimpleSniffer` to keep the configured hosts; " +
		"or make the nodes publish reachable addresses (`http.publish_host`). Fluent Bit does not sniff."
	remedyKeepalive = "Something between here and the cluster (a load balancer, a proxy, or the node) closes idle keep-alive connections. " +
		"A shipper that reuses a pooled connection as it is being closed gets a reset or EOF on its next bulk and marks the node dead " +
		"until `resurrect_after` (60 s). fluent-plugin-elasticsearch: `reconnect_on_error true`, `resurrect_after 5s`; " +
		"Fluent Bit: set `net.keepalive_idle_timeout` below the close delay; or raise the load balancer's idle timeout."
	remedyChurn = "Connections are not being reused: every new connection costs a TCP (and TLS) handshake and leaves a TIME_WAIT " +
		"socket behind, the trail a stalled shipper leaves (\"Logs stop reaching Elasticsearch\", docs/troubleshooting.md). Make sure the proxy in front of the cluster keeps connections alive (no `Connection: close`); " +
		"Fluent Bit: `net.keepalive on`; fluent-plugin-elasticsearch: `reload_connections false` so the pool is not rebuilt, " +
		"and fewer `flush_thread_count` workers each opening their own connection."
	remedyRejections = "The cluster answers bulk items with 429 es_rejected_execution_exception. What that costs depends on the shipper. " +
		"fluent-plugin-elasticsearch fails the whole chunk (\"Rejected Elasticsearch due to es_rejected_execution_exception\", " +
		"an unrecoverable_error_types entry by default) and resends all of it: without a stable _id the accepted part is indexed again " +
		"(\"Duplicates in Elasticsearch\", docs/troubleshooting.md); add the `elasticsearch_genid` filter with `id_key _hash` and `write_operation create`, keeping `_hash` in " +
		"the document (no `remove_keys _hash`: the plugin then skips the retried records and loses the rejected ones), lower " +
		"`flush_thread_count`, raise `flush_interval`. Fluent Bit's es output counts a bulk with any 200/201 item as a success: the " +
		"rejected items are lost, not retried and not logged (even with `Trace_Error On`; its metrics show no error), so for Fluent Bit " +
		"rejections mean loss, not duplicates; no Fluent Bit setting retries them: remove the pressure (fewer `Workers`, smaller " +
		"chunks) and count the loss with `logdoctor smoke`. rsyslog omelasticsearch: `retryfailures=\"on\"` (otherwise rejected items " +
		"only reach the errorfile). On the cluster: more write capacity, fewer shards per bulk."
	remedyBlocked = "An index block refuses writes: `read_only_allow_delete` is what Elasticsearch puts on every index on a node " +
		"past the flood-stage disk watermark (`cluster.routing.allocation.disk.watermark.flood_stage`, 95% by default). Shippers " +
		"retry until their buffers fill, then drop or stall. Free disk (delete old indices, add nodes or disk; " +
		"`GET _cat/allocation?v` shows usage per node); from 7.4 on the block lifts by itself once usage falls under the high " +
		"watermark, before that remove it with `PUT _all/_settings {\"index.blocks.read_only_allow_delete\": null}`. " +
		"An explicit `index.blocks.write` or `read_only` setting must be removed the same way."
	remedyPressure = "Indexing pressure rejected whole requests (coordinating/primary/replica memory over " +
		"indexing_pressure.memory.limit): shippers see 429 for the entire bulk and resend it. Send smaller bulks " +
		"(fluent-plugin-elasticsearch `chunk_limit_size`, `bulk_message_request_threshold`; Fluent Bit smaller chunks), " +
		"fewer concurrent flushes (`flush_thread_count`, `Workers`), and use `elasticsearch_genid` + `id_key` + `write_operation create` " +
		"so the resends cannot duplicate."
	remedyBulkTooLarge = "Bulk bodies over http.max_content_length get 413 with an empty body and are never accepted; the chunk is " +
		"retried until it is dropped. fluent-plugin-elasticsearch: `bulk_message_request_threshold` (and the buffer's `chunk_limit_size`) " +
		"below the limit; Fluent Bit: smaller chunks (`Buffer_Chunk_Size` on the input); or raise `http.max_content_length` on the cluster."
	remedyTimeout = "A bulk that takes longer than the shipper's request timeout is abandoned and resent while the cluster still indexes it: " +
		"duplicates unless every event has a stable _id (\"Duplicates in Elasticsearch\", docs/troubleshooting.md). fluent-plugin-elasticsearch: `request_timeout` well above the p99 " +
		"(default 5s) plus `elasticsearch_genid`/`id_key` and `write_operation create`; Fluent Bit: `Generate_ID On` and a larger `net.io_timeout`."
	remedyIdempotent = "A create with a fixed _id must be refused (409) the second time. Something rewrites the request: an ingest " +
		"pipeline that sets _id, an alias or data stream routing each write to a new backing index, or a proxy turning create into index. " +
		"Use `write_operation create` with `id_key` in fluent-plugin-elasticsearch (Fluent Bit: `Generate_ID On`) and check the pipeline."
	remedyLost = "The cluster acknowledged the canary (201) but it is not there: an ingest pipeline with a drop processor, an alias " +
		"writing elsewhere, or a proxy answering for the cluster. Check the index's default_pipeline and aliases; " +
		"`logdoctor smoke` counts events end to end."
	remedyDuplicates = "Events were indexed more than once: the shipper resent bulks (429s, timeouts, restarts) and Elasticsearch generated a " +
		"new _id each time (\"Duplicates in Elasticsearch\", docs/troubleshooting.md). fluent-plugin-elasticsearch: `<filter> @type elasticsearch_genid hash_id_key _hash </filter>` " +
		"with `id_key _hash` and `write_operation create` (a resend then gets 409 instead of a copy), and keep `_hash` in the document: " +
		"with `remove_keys _hash` the plugin cannot rebuild the _id of the records it retries, skips them, and silently loses the " +
		"rejected ones. Fluent Bit: `Generate_ID On` (with the default `Write_Operation create`); a resend then answered 409 for every " +
		"item counts as a failure and is retried until `Retry_Limit` (keep it finite: with `Retry_Limit False` forever, though the " +
		"events are indexed). rsyslog omelasticsearch: `bulkid` + `dynbulkid=\"on\"` + `writeoperation=\"create\"`."
	remedyDupsIncomplete = "Run es dups again with a larger `--max-docs` (it reads the whole index by default up to 1,000,000 documents), " +
		"or narrow `--index` to one daily index at a time. If a page failed or timed out, the cluster is overloaded or a shard is " +
		"unavailable: check `es probe` (es.cluster_health, es.write_rejections) and retry when it is quieter. A scroll that " +
		"expired between pages (search_context_missing_exception) means pages took longer than its 2 minute keep-alive."
	remedyProductStripped = "Let the X-Elastic-Product header through whatever sits in front of the cluster (proxy, gateway, " +
		"service mesh). Elastic's clients from 7.14 on (the elasticsearch gem behind fluent-plugin-elasticsearch, elasticsearch-py) " +
		"check it and raise UnsupportedProductError (\"The client noticed that the server is not Elasticsearch\") without it; " +
		"pinning the elasticsearch gem below 7.14 only hides the problem."
	remedyOpenSearch = "Elastic's clients from 7.14 on refuse OpenSearch. Use fluent-plugin-opensearch (`@type opensearch`) instead of " +
		"fluent-plugin-elasticsearch, or Fluent Bit's `opensearch` output instead of `es`; keep elasticsearch clients below 7.14 only as a stopgap."
	remedyHealthRed = "Primary shards are unassigned: bulk items for those indices fail with 503 unavailable_shards_exception and " +
		"shippers retry until their buffers fill (then drop). Check GET _cluster/allocation/explain; the shipper's buffer " +
		"(`total_limit_size`, Fluent Bit `storage.total_limit_size`) decides how long it can wait."
	remedyHealthYellow = "Replica shards are unassigned: writes work but there is no redundancy. On a single node set " +
		"`number_of_replicas` 0 in the index template; otherwise check GET _cluster/allocation/explain."
)
