package configcheck

import (
	"fmt"
	"strings"
	"time"

	"github.com/logdoctor/logdoctor/pkg/report"
	"github.com/logdoctor/logdoctor/pkg/shipconf"
)

// ---- Elasticsearch outputs (seeds 000 and 003) ----

func (ck *checker) elasticsearch() {
	for _, o := range ck.c.Outputs() {
		if !o.IsElasticsearch() {
			continue
		}
		ck.esNoID(o)
		ck.es429(o)
		if ck.fluentBit() {
			ck.fbTypeName(o)
			ck.fbChunkTooLarge(o)
			continue
		}
		ck.fdReload(o)
		ck.fdRequestSize(o)
	}
}

func (ck *checker) esNoID(o *shipconf.Plugin) {
	idKey := o.Param("id_key")
	if idKey != nil && idKey.State == shipconf.Unknown {
		return
	}
	hasID := idKey != nil && idKey.Value != ""
	if ck.fluentBit() {
		gen := ck.c.Setting(o, nil, "generate_id")
		if gen == nil || gen.State == shipconf.Unknown || ck.bool(gen.Value) || hasID {
			return
		}
		ck.add(report.Finding{ID: FindingESNoID, Severity: report.Warning,
			Summary: fmt.Sprintf("%s: %s output %s sends documents without an _id (no Generate_ID On, no Id_Key): a chunk retried after a 429 or a timeout is indexed again",
				where(gen, o), o.Type, o.Name()),
			Evidence: evidence(o, gen, false, nil),
			Remedy:   "Set `Generate_ID On` (an id hashed from the record) or `Id_Key` naming a unique field; keep `Write_Operation create` (the default) so a replay gets 409 instead of a second copy."})
		return
	}
	if hasID {
		return
	}
	var genid []string
	for _, r := range ck.to[o] {
		for _, f := range r.Filters {
			if f.Type == "elasticsearch_genid" || f.Type == "opensearch_genid" {
				genid = append(genid, fmt.Sprintf("%s:%d", f.Pos.File, f.Pos.Line))
			}
		}
	}
	prm := &shipconf.Param{Key: "id_key", Name: "id_key", Value: "", State: shipconf.Default, Pos: o.Pos}
	f := report.Finding{ID: FindingESNoID, Severity: report.Warning, Evidence: evidence(o, prm, false, nil)}
	if len(genid) > 0 {
		f.Evidence["genid_filters"] = genid
		f.Summary = fmt.Sprintf("%s: output %s has no id_key: the hash the %s_genid filter adds is never used as _id, so a chunk retried after a 429 or a timeout is indexed again",
			where(prm, o), o.Name(), strings.TrimSuffix(o.Type, "_data_stream"))
		f.Remedy = "Set `id_key _hash` (the filter's hash_id_key) in this <match>, and `write_operation create` so a replay gets 409 instead of a second copy."
	} else {
		f.Summary = fmt.Sprintf("%s: output %s sends documents without a stable _id (no id_key, no %s_genid filter on its route): a chunk retried after a 429 or a timeout is indexed again",
			where(prm, o), o.Name(), genidPrefix(o))
		f.Remedy = fmt.Sprintf("Add `<filter PATTERN> @type %s_genid </filter>` before this <match> (it adds _hash once, before buffering) and set `id_key _hash` here, with `write_operation create`.", genidPrefix(o))
	}
	ck.add(f)
}

func genidPrefix(o *shipconf.Plugin) string {
	if o.IsOpenSearch() {
		return "opensearch"
	}
	return "elasticsearch"
}

func (ck *checker) es429(o *shipconf.Plugin) {
	if ck.fluentBit() {
		prm := &shipconf.Param{Key: "Name", Name: "name", Value: o.Type, State: shipconf.Known, Pos: o.Pos}
		if n := o.Param("name"); n != nil {
			prm = n
		}
		ck.add(report.Finding{ID: FindingES429Dropped, Severity: report.Critical,
			Summary: fmt.Sprintf("%s: Fluent Bit's %s output %s counts a bulk request with any successful item as delivered and drops the items rejected with 429, without a log line",
				where(prm, o), o.Type, o.Name()),
			Evidence: evidence(o, prm, false, nil),
			Remedy: "Fluent Bit cannot retry single rejected items: keep the cluster out of write rejections (more write thread pool queue or nodes, fewer concurrent bulks: " +
				"lower `Workers`, a larger [SERVICE] `Flush`), set `Trace_Error On` to log rejected items, and count what arrives with `logdoctor es dups`; " +
				"or send through Fluentd with fluent-plugin-elasticsearch, which re-emits them once `unrecoverable_error_types` does not list es_rejected_execution_exception."})
		return
	}
	types := ck.c.Setting(o, nil, "unrecoverable_error_types")
	if types == nil || types.State == shipconf.Unknown {
		return
	}
	rejected := "es_rejected_execution_exception"
	if o.IsOpenSearch() {
		rejected = "rejected_execution_exception"
	}
	found := false
	var rest []string
	for _, t := range shipconf.FluentdArray(types.Value) {
		if t == rejected {
			found = true
		} else {
			rest = append(rest, fmt.Sprintf("%q", t))
		}
	}
	if !found {
		return
	}
	// What fluent-plugin-elasticsearch 5.2.5 does with it (checked with
	// the real Fluentd, internal/interop fluentdRejectionsStall): the
	// error handler raises ElasticsearchRequestAbortError for a listed
	// type (elasticsearch_error_handler.rb), send_bulk's `rescue => e`
	// turns that into RecoverableRequestFailure (out_elasticsearch.rb), so
	// the whole chunk is retried, accepted items included. Without the
	// type in the list, the handler re-emits only the rejected items.
	id, stable := ck.fdStableID(o)
	giveUp := ck.fdGiveUp(o)
	sev, copies := report.Critical, "items already indexed are sent again and indexed as copies (no stable _id)"
	if stable {
		sev, copies = report.Warning, "items already indexed are sent again ("+ck.fdResendNote(o, id)+")"
	}
	ck.add(report.Finding{ID: FindingES429Dropped, Severity: sev,
		Summary: fmt.Sprintf("%s: output %s lists %s in unrecoverable_error_types%s: one item rejected with 429 makes the plugin retry the whole chunk (RecoverableRequestFailure): %s; under steady rejections every attempt meets new 429s, so the chunk never passes, the output stalls and the buffer fills until %s",
			where(types, o), o.Name(), rejected, defaultNote(types), copies, giveUp),
		Evidence: evidence(o, types, false, map[string]any{"rejected_type": rejected, "on_rejection": "whole chunk retried",
			"stable_id": stable, "gives_up": giveUp}),
		Remedy: fmt.Sprintf("Set `unrecoverable_error_types [%s]` (the list without %s) so the plugin re-emits only the rejected items and the rest of the chunk counts as delivered%s.",
			strings.Join(rest, ","), rejected, idRemedy(o, stable))})
}

// fdStableID says whether the output sends a stable document id, and
// which setting gives it.
func (ck *checker) fdStableID(o *shipconf.Plugin) (string, bool) {
	if p := o.Param("id_key"); p != nil && p.State != shipconf.Unknown && p.Value != "" {
		return "id_key " + p.Value, true
	}
	return "", false
}

// fdResendNote is what a resend of indexed documents costs with a
// stable id: 409s under `create`, overwrites under `index`.
func (ck *checker) fdResendNote(o *shipconf.Plugin, id string) string {
	if op := ck.c.Setting(o, nil, "write_operation"); op != nil && op.State != shipconf.Unknown && op.Value == "create" {
		return id + " with write_operation create makes those resends 409s: wasted work, not duplicates"
	}
	return id + " makes those resends overwrite the same documents: wasted work, not duplicates"
}

func idRemedy(o *shipconf.Plugin, stable bool) string {
	if stable {
		return "; keep the id and `write_operation create` so a re-emitted item already indexed gets 409, not a copy"
	}
	return fmt.Sprintf(", and give documents a stable id (`<filter> @type %s_genid </filter>` on the route, `id_key _hash`, `write_operation create`) so no resend can index a copy", genidPrefix(o))
}

// fdGiveUp is when Fluentd stops retrying a chunk, and what becomes of
// it then.
func (ck *checker) fdGiveUp(o *shipconf.Plugin) string {
	b := bufferSec(o.Buffer())
	if f := ck.c.Setting(o, b, "retry_forever"); f != nil && f.State != shipconf.Unknown && ck.bool(f.Value) {
		return "it is full (retry_forever: the chunk is never given up)"
	}
	end := "it is dropped"
	if o.Secondary() != nil {
		end = "it goes to <secondary>"
	}
	if m := b.Get("retry_max_times"); m != nil && m.State == shipconf.Known {
		return fmt.Sprintf("retry_max_times %s gives up on the chunk and %s", m.Value, end)
	}
	if t := ck.c.Setting(o, b, "retry_timeout"); t != nil && t.State != shipconf.Unknown {
		return fmt.Sprintf("retry_timeout %s%s gives up on the chunk and %s", t.Value, defaultIn(t), end)
	}
	return "Fluentd gives up on the chunk and " + end
}

func (ck *checker) fdReload(o *shipconf.Plugin) {
	sniffer := o.Param("sniffer_class_name")
	if sniffer != nil && (sniffer.State == shipconf.Unknown || strings.HasSuffix(sniffer.Value, "SimpleSniffer")) {
		return
	}
	reload := ck.c.Setting(o, nil, "reload_connections")
	onFailure := ck.c.Setting(o, nil, "reload_on_failure")
	var prm *shipconf.Param
	switch {
	case reload != nil && reload.State != shipconf.Unknown && ck.bool(reload.Value):
		prm = reload
	case onFailure != nil && onFailure.State != shipconf.Unknown && ck.bool(onFailure.Value):
		prm = onFailure
	default:
		return
	}
	resurrect := ck.c.Setting(o, nil, "resurrect_after")
	if resurrect == nil {
		resurrect = &shipconf.Param{Value: "60s"}
	}
	simple := "Fluent::Plugin::ElasticsearchSimpleSniffer"
	if o.IsOpenSearch() {
		simple = "Fluent::Plugin::OpenSearchSimpleSniffer"
	}
	extra := map[string]any{"resurrect_after": resurrect.Value}
	ck.add(report.Finding{ID: FindingESReloadConnections, Severity: report.Warning,
		Summary: fmt.Sprintf("%s: output %s re-sniffs the cluster (%s %s%s) without %s: the client replaces the configured host with the nodes' publish addresses, which the shipper may not reach (\"Cannot get new connection from pool\", dead for resurrect_after %s)",
			where(prm, o), o.Name(), prm.Key, prm.Value, defaultIn(prm), simple, resurrect.Value),
		Evidence: evidence(o, prm, false, extra),
		Remedy: fmt.Sprintf("Set `reload_connections false`, `reconnect_on_error true`, `reload_on_failure true` with `sniffer_class_name %s` (it keeps the configured hosts), and `resurrect_after 5s`. "+
			"Start Fluentd with `-r %s`: the plugin does not load that class itself, and Fluentd refuses the setting without it.", simple, sniffFile(o))})
}

// sniffFile is the file that defines the simple sniffer: the plugins do
// not load it themselves.
func sniffFile(o *shipconf.Plugin) string {
	if o.IsOpenSearch() {
		return "fluent/plugin/opensearch_simple_sniffer"
	}
	return "fluent/plugin/elasticsearch_simple_sniffer"
}

// fdBulkSize is the largest bulk body the output sends: the whole chunk,
// since bulk_message_request_threshold defaults to -1 (plugin v5.1.0+),
// else the threshold when smaller.
func (ck *checker) fdBulkSize(o *shipconf.Plugin) (int64, *shipconf.Param) {
	b := bufferSec(o.Buffer())
	chunk := ck.c.Setting(o, b, "chunk_limit_size")
	if chunk == nil || chunk.State == shipconf.Unknown {
		return 0, nil
	}
	size, ok := shipconf.FluentdSize(chunk.Value)
	if !ok {
		return 0, nil
	}
	th := ck.c.Setting(o, nil, "bulk_message_request_threshold")
	if th != nil && th.State == shipconf.Known {
		if t, ok := shipconf.FluentdSize(th.Value); ok && t > 0 && t < size {
			return t, th
		}
	}
	return size, chunk
}

func (ck *checker) fdRequestSize(o *shipconf.Plugin) {
	size, src := ck.fdBulkSize(o)
	if src == nil {
		return
	}
	rt := ck.c.Setting(o, nil, "request_timeout")
	if rt != nil && rt.State != shipconf.Unknown {
		if d, ok := shipconf.FluentdTime(rt.Value); ok && d <= 5*time.Second && size > largeBulk {
			// A timed-out bulk is resent whole: copies only without a
			// stable _id; with one, the cluster redoes the work (409s under
			// create) and a bulk that keeps timing out holds the chunk.
			id, stable := ck.fdStableID(o)
			resend := "the resend indexes every document again as a copy (no stable _id)"
			if stable {
				resend = "the resend redoes the work (" + ck.fdResendNote(o, id) + ") and a bulk that keeps timing out holds the chunk back"
			}
			ck.add(report.Finding{ID: FindingESRequestTimeout, Severity: report.Warning,
				Summary: fmt.Sprintf("%s: output %s times out after %v (request_timeout%s) on bulk requests of up to %s (%s): the client gives up while Elasticsearch still indexes, and %s",
					where(rt, o), o.Name(), d, defaultIn(rt), human(size), src.Key, resend),
				Evidence: evidence(o, rt, false, map[string]any{"max_bulk_bytes": size, "bulk_size_from": src.Key, "stable_id": stable}),
				Remedy:   "Set `request_timeout 60s` (above the slowest bulk you expect), or make requests smaller with `bulk_message_request_threshold 5m` / a smaller chunk_limit_size."})
		}
	}
	limit := ck.o.ESMaxContentLength
	sev := report.Critical
	if limit <= 0 {
		limit, sev = ESDefaultMaxContentLength, report.Warning
	}
	if size > limit {
		ck.add(report.Finding{ID: FindingChunkTooLarge, Severity: sev,
			Summary: fmt.Sprintf("%s: output %s can send bulk requests of %s (%s%s, sent whole: bulk_message_request_threshold is -1 by default) above http.max_content_length %s: Elasticsearch answers 413 and the chunk is never delivered",
				where(src, o), o.Name(), human(size), src.Key, defaultIn(src), human(limit)),
			Evidence: evidence(o, src, false, map[string]any{"max_bulk_bytes": size, "max_content_length": limit}),
			Remedy:   fmt.Sprintf("Set `bulk_message_request_threshold` (e.g. 20m) in this <match> so a chunk is split into requests below %s, or lower chunk_limit_size in <buffer>.", human(limit))})
	}
}

// largeBulk is "chunks that can exceed a few MB": above it, indexing can
// take longer than a 5 s timeout on a busy cluster.
const largeBulk = 4 << 20

// fbChunkSize is the size Fluent Bit closes a chunk at
// (FLB_INPUT_CHUNK_FS_MAX_SIZE in include/fluent-bit/flb_input_chunk.h);
// the es output sends one chunk as one bulk request, whose JSON is larger
// still.
const fbChunkSize = 2048000

func (ck *checker) fbChunkTooLarge(o *shipconf.Plugin) {
	if ck.o.ESMaxContentLength <= 0 || ck.o.ESMaxContentLength >= fbChunkSize {
		return
	}
	prm := &shipconf.Param{Key: "chunk size", Name: "chunk size", Value: fmt.Sprint(fbChunkSize), State: shipconf.Default, Pos: o.Pos}
	ck.add(report.Finding{ID: FindingChunkTooLarge, Severity: report.Critical,
		Summary: fmt.Sprintf("%s: output %s sends each chunk (up to %d bytes, more as JSON) as one bulk request, above --es-max-content-length %d: 413 and chunks that are never delivered",
			where(prm, o), o.Name(), fbChunkSize, ck.o.ESMaxContentLength),
		Evidence: evidence(o, prm, false, map[string]any{"max_content_length": ck.o.ESMaxContentLength}),
		Remedy:   "Raise http.max_content_length on the cluster above 4 MB; Fluent Bit's chunk size is not configurable."})
}

func (ck *checker) fbTypeName(o *shipconf.Plugin) {
	s := ck.c.Setting(o, nil, "suppress_type_name")
	if s == nil || s.State == shipconf.Unknown || ck.bool(s.Value) {
		return
	}
	sev := report.Warning
	extra := map[string]any{}
	why := "Elasticsearch 8 and OpenSearch 2 reject it"
	if v := ck.o.ESVersion; v != nil {
		extra["es_version"] = v.String()
		if v.rejectsType() {
			sev = report.Critical
			why = v.String() + " rejects every request with it"
		}
	}
	ck.add(report.Finding{ID: FindingESTypeName, Severity: sev,
		Summary:  fmt.Sprintf("%s: %s output %s sends _type in every bulk action (no Suppress_Type_Name On%s): %s", where(s, o), o.Type, o.Name(), defaultIn(s), why),
		Evidence: evidence(o, s, false, extra),
		Remedy:   "Set `Suppress_Type_Name On` in this [OUTPUT]."})
}

// ---- UDP inputs (big UDP messages missing, docs/troubleshooting.md) ----

func (ck *checker) udpMessageSize() {
	for _, in := range ck.c.Inputs() {
		limit, prm, bind := ck.udpLimit(in)
		if prm == nil {
			continue
		}
		v6 := strings.Contains(bind, ":")
		overhead, family := 28, "IPv4"
		if v6 {
			overhead, family = 48, "IPv6"
		}
		maxPayload := ck.o.MTU - overhead
		if limit <= int64(maxPayload) {
			continue
		}
		ev := map[string]any{"limit_bytes": limit, "mtu": ck.o.MTU, "mtu_source": ck.o.MTUSource,
			"ip": family, "max_unfragmented_payload": maxPayload}
		if ck.fluentBit() {
			ck.fbUDPNotes(in, ev)
		}
		ck.add(report.Finding{ID: FindingUDPMessageSize, Severity: report.Warning,
			Summary: fmt.Sprintf("%s: UDP input %s accepts messages up to %d bytes (%s%s), above %d, the largest %s payload that fits one packet at MTU %d: bigger datagrams arrive as fragments, and a load balancer that hashes on ports drops the fragments that carry none",
				where(prm, in), in.Name(), limit, prm.Key, defaultIn(prm), maxPayload, family, ck.o.MTU),
			Evidence: evidence(in, prm, false, ev),
			Remedy:   fmt.Sprintf("Keep every message at or under %d bytes at the sender (truncate or split long records), or ship over TCP (Fluentd in_tcp/forward with require_ack_response, Fluent Bit tcp/forward); check the path with `logdoctor udp-frag`.", maxPayload)})
	}
}

// udpLimit returns the largest datagram a UDP input accepts, the setting
// it comes from and the bind address; prm is nil for inputs that are not
// UDP.
//
// Fluent Bit (v4.2.8) reads each datagram once into a buffer of the chunk
// size, one byte kept for a NUL:
//   - udp: plugins/in_udp/udp_conn.c udp_conn_event resets buf_len and reads
//     at most buf_size - 1 bytes, buf_size being chunk_size
//     (plugins/in_udp/udp_config.c: Chunk_Size in KiB, atoi()*1024, default
//     FLB_IN_UDP_CHUNK "32768" bytes in udp_conn.h). Buffer_Size only bounds
//     a growth that never happens, since the buffer is emptied before each
//     read: it does not raise the limit. A longer JSON datagram is cut,
//     left incomplete and dropped.
//   - syslog, mode udp: plugins/in_syslog/syslog_conn.c
//     syslog_dgram_conn_event reads at most buf_size - 1 bytes, buf_size
//     being Buffer_Chunk_Size (a size: k is 1000, default FLB_SYSLOG_CHUNK
//     "32768" in syslog.h); Buffer_Max_Size plays no part. A longer message
//     arrives cut at the limit.
//
// Checked with the real Fluent Bit 4.2.8 (internal/interop
// TestFluentBitUDPLimits): Chunk_Size 2 with Buffer_Size 64 takes 2047-byte
// datagrams and drops 2048; the default takes 32767 and drops 32768; syslog
// with Buffer_Chunk_Size 2k and Buffer_Max_Size 64k cuts messages at 1999
// bytes.
func (ck *checker) udpLimit(in *shipconf.Plugin) (int64, *shipconf.Param, string) {
	if ck.fluentBit() {
		bind := paramOr(in, "listen", "0.0.0.0")
		switch in.Type {
		case "udp":
			p := in.Param("chunk_size")
			if p == nil {
				d := ck.c.Setting(in, nil, "chunk_size")
				return shipconf.FluentBitAtoi(d.Value) - 1, d, bind
			}
			if p.State == shipconf.Unknown {
				return 0, nil, ""
			}
			// udp_config.c: Chunk_Size is in KiB; one read takes at most
			// chunk_size - 1 bytes.
			return shipconf.FluentBitAtoi(p.Value)*1024 - 1, p, bind
		case "syslog":
			mode := ck.c.Setting(in, nil, "mode")
			if mode == nil || mode.State == shipconf.Unknown || !strings.EqualFold(mode.Value, "udp") {
				return 0, nil, ""
			}
			p := ck.c.Setting(in, nil, "buffer_chunk_size")
			if p == nil || p.State == shipconf.Unknown {
				return 0, nil, ""
			}
			n, ok := shipconf.FluentBitSize(p.Value)
			if !ok {
				return 0, nil, ""
			}
			return n - 1, p, bind
		}
		return 0, nil, ""
	}
	bind := paramOr(in, "bind", "0.0.0.0")
	var p *shipconf.Param
	switch in.Type {
	case "udp":
		p = in.Param("body_size_limit")
		if p == nil || p.State == shipconf.Unknown {
			p = ck.c.Setting(in, nil, "message_length_limit")
		}
	case "syslog":
		proto := "udp"
		if t := in.Section.Sub("transport"); len(t) > 0 && strings.TrimSpace(t[0].Arg) != "" {
			proto = strings.TrimSpace(t[0].Arg)
		}
		if pt := in.Param("protocol_type"); pt != nil && pt.State == shipconf.Known {
			proto = pt.Value
		}
		if proto != "udp" {
			return 0, nil, ""
		}
		p = ck.c.Setting(in, nil, "message_length_limit")
	default:
		return 0, nil, ""
	}
	if p == nil || p.State == shipconf.Unknown {
		return 0, nil, ""
	}
	n, ok := shipconf.FluentdSize(p.Value)
	if !ok {
		return 0, nil, ""
	}
	return n, p, bind
}

// fbUDPNotes adds to a Fluent Bit UDP finding's evidence what becomes of
// a datagram over the limit, and the buffer setting that looks like a
// limit but is not one (see udpLimit).
func (ck *checker) fbUDPNotes(in *shipconf.Plugin, ev map[string]any) {
	switch in.Type {
	case "udp":
		if f := in.Param("format"); f == nil || strings.EqualFold(f.Value, "json") {
			ev["over_limit"] = "dropped: the JSON is cut and discarded as incomplete"
		}
		if b := in.Param("buffer_size"); b != nil {
			ev["ignored"] = fmt.Sprintf("Buffer_Size %s (line %d) does not raise the limit: each datagram is one read of Chunk_Size - 1 bytes", b.Value, b.Pos.Line)
		}
	case "syslog":
		ev["over_limit"] = "truncated at the limit"
		if b := in.Param("buffer_max_size"); b != nil {
			ev["ignored"] = fmt.Sprintf("Buffer_Max_Size %s (line %d) does not raise the limit: each datagram is one read of Buffer_Chunk_Size - 1 bytes", b.Value, b.Pos.Line)
		}
	}
}

func paramOr(p *shipconf.Plugin, name, def string) string {
	if v := p.Param(name); v != nil && v.State == shipconf.Known {
		return v.Value
	}
	return def
}

// ---- secrets ----

// secretWords mark parameters that hold credentials; names of files and
// paths holding them are not secrets themselves (plain substring tests:
// this runs on every parameter).
var (
	secretWords   = []string{"password", "passwd", "shared_key", "api_key", "apikey", "secret", "token", "cloud_auth", "key_pass", "credential"}
	notSecretEnds = []string{"_file", "_path", "_key_name", "_key_id", "_env", "_header", "_type", "_length", "_url"}
)

func isSecretName(name string) bool {
	n := strings.ToLower(name)
	for _, e := range notSecretEnds {
		if strings.HasSuffix(n, e) {
			return false
		}
	}
	for _, w := range secretWords {
		if strings.Contains(n, w) {
			return true
		}
	}
	return false
}

func (ck *checker) secrets() {
	for _, p := range ck.c.Plugins {
		ck.secretsIn(p, p.Section)
	}
	if ck.c.Service != nil {
		ck.secretsIn(nil, ck.c.Service)
	}
}

func (ck *checker) secretsIn(p *shipconf.Plugin, s *shipconf.Section) {
	for _, prm := range s.Params {
		if !isSecretName(prm.Name) {
			continue
		}
		if prm.State != shipconf.Known || prm.Value == "" || (len(prm.Env) > 0 && !prm.EnvFromFile) {
			continue
		}
		if strings.HasPrefix(prm.Value, "#{") || strings.HasPrefix(prm.Value, "${") {
			continue
		}
		owner := "[SERVICE]"
		if p != nil {
			owner = p.Name()
		}
		how := "written in the file"
		if prm.EnvFromFile {
			how = "set in the file through " + strings.Join(prm.Env, ", ")
		}
		ck.add(report.Finding{ID: FindingSecretPlaintext, Severity: report.Warning,
			Summary:  fmt.Sprintf("%s:%d: %s of %s is %s (value not shown)", prm.Pos.File, prm.Pos.Line, prm.Key, owner, how),
			Evidence: evidence(p, prm, true, nil),
			Remedy:   secretRemedy(ck.c.Shipper, prm.Key)})
	}
	for _, sub := range s.Sections {
		// Nested outputs (copy stores, secondaries) are checked as
		// plugins of their own.
		if p != nil && p.Kind == shipconf.Output && (sub.Name == "store" || sub.Name == "secondary") {
			continue
		}
		ck.secretsIn(p, sub)
	}
}

func secretRemedy(s shipconf.Shipper, key string) string {
	if s == shipconf.FluentBit {
		return fmt.Sprintf("Take it from the environment: `%s ${%s}` with the variable set from a Kubernetes Secret (env valueFrom secretKeyRef), and rotate the value that was in the file.", key, strings.ToUpper(strings.ReplaceAll(key, ".", "_")))
	}
	return fmt.Sprintf("Take it from the environment: `%s \"#{ENV['%s']}\"` with the variable set from a Kubernetes Secret (env valueFrom secretKeyRef), and rotate the value that was in the file.", key, strings.ToUpper(key))
}

// ---- monitoring ----

func (ck *checker) monitoring() {
	if ck.fluentBit() {
		hs := ck.c.Setting(nil, ck.c.Service, "http_server")
		if ck.c.Service == nil {
			hs = &shipconf.Param{Key: "HTTP_Server", Name: "http_server", Value: "off", State: shipconf.Default, Pos: shipconf.Pos{File: ck.c.Main, Line: 1}}
		}
		if hs == nil || hs.State == shipconf.Unknown || ck.bool(hs.Value) {
			return
		}
		ck.add(report.Finding{ID: FindingNoMonitoring, Severity: report.Info,
			Summary:  fmt.Sprintf("%s: HTTP_Server is off%s: nothing exposes chunk, retry and storage state (/api/v1/metrics, /api/v1/storage)", where(hs, nil2(ck.c)), defaultNote(hs)),
			Evidence: evidence(nil, hs, false, nil),
			Remedy:   "Set `HTTP_Server On` (with `HTTP_Listen 0.0.0.0`, `HTTP_Port 2020` and `storage.metrics On`) in [SERVICE], and alert on fluentbit_output_retries_failed_total and dropped records."})
		return
	}
	for _, in := range ck.c.Inputs() {
		if in.Type == "monitor_agent" || in.Type == "prometheus_output_monitor" {
			return
		}
	}
	pos := shipconf.Pos{File: ck.c.Main, Line: 1}
	ck.add(report.Finding{ID: FindingNoMonitoring, Severity: report.Info,
		Summary:  fmt.Sprintf("%s:1: no monitor_agent or prometheus_output_monitor source: nothing exposes buffer length, retry counts or errors", ck.c.Main),
		Evidence: map[string]any{"file": pos.File, "line": pos.Line},
		Remedy:   "Add `<source> @type monitor_agent port 24220 </source>` (buffer_queue_length, retry_count per output at /api/plugins.json), or fluent-plugin-prometheus's `@type prometheus_output_monitor`, and alert on growing retry counts."})
}

// nil2 gives where() a plugin-shaped anchor for the service section.
func nil2(c *shipconf.Config) *shipconf.Plugin {
	pos := shipconf.Pos{File: c.Main, Line: 1}
	if c.Service != nil {
		pos = c.Service.Pos
	}
	return &shipconf.Plugin{Pos: pos}
}
