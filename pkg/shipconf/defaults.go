package shipconf

import "strings"

// Plugin defaults the rules need, where the file says nothing. Each table
// names the source it was read from; the values were checked against
// Fluentd v1.16.11 and fluent-plugin-elasticsearch v5.2.5 (../shared/peers),
// fluent-plugin-opensearch 1.1 and Fluent Bit v4.2.8 (public sources, the
// files named below). A default is the value the shipper uses; the model
// marks a parameter taken from here with State Default.

// fdBufferDefaults: lib/fluent/plugin/output.rb's <buffer> section
// (config_param :overflow_action ... default: :throw_exception,
// :retry_forever false, :retry_timeout 72*60*60, :retry_max_times nil,
// :retry_type :exponential_backoff) and lib/fluent/plugin/buffer.rb
// (DEFAULT_CHUNK_LIMIT_SIZE 8 * 1024 * 1024, DEFAULT_TOTAL_LIMIT_SIZE
// 512 * 1024 * 1024, :queue_limit_length nil).
var fdBufferDefaults = map[string]string{
	"@type":            "memory",
	"chunk_limit_size": "8m",
	"total_limit_size": "512m",
	"overflow_action":  "throw_exception",
	"retry_forever":    "false",
	"retry_timeout":    "72h",
	"flush_mode":       "default",
	"flush_interval":   "60s",
}

// fdFileBufferDefaults: lib/fluent/plugin/buf_file.rb
// (DEFAULT_CHUNK_LIMIT_SIZE 256 * 1024 * 1024, DEFAULT_TOTAL_LIMIT_SIZE
// 64 * 1024 * 1024 * 1024, set with config_set_default); buf_file_single.rb
// uses the same.
var fdFileBufferDefaults = map[string]string{
	"chunk_limit_size": "256m",
	"total_limit_size": "64g",
}

// fdPluginDefaults, by plugin type:
//   - forward: lib/fluent/plugin/out_forward.rb (config_param
//     :require_ack_response, :bool, default: false; :ack_response_timeout 190;
//     :send_timeout 60)
//   - elasticsearch (and _data_stream, _dynamic, which inherit it):
//     fluent-plugin-elasticsearch 5.2.5 lib/fluent/plugin/out_elasticsearch.rb
//     (:reload_connections true, :reconnect_on_error false,
//     :reload_on_failure false, :resurrect_after 60, :request_timeout 5,
//     :write_operation "index", :id_key nil, :sniffer_class_name nil,
//     :unrecoverable_error_types ["out_of_memory_error",
//     "es_rejected_execution_exception"], :bulk_message_request_threshold
//     DEFAULT_TARGET_BULK_BYTES = -1)
//   - opensearch: fluent-plugin-opensearch lib/fluent/plugin/out_opensearch.rb
//     (the same, with :unrecoverable_error_types ["out_of_memory_error",
//     "rejected_execution_exception"])
//   - udp: lib/fluent/plugin/in_udp.rb (:message_length_limit 4096)
//   - syslog: lib/fluent/plugin/in_syslog.rb (:message_length_limit 2048,
//     <transport> protocol default :udp)
var fdPluginDefaults = map[string]map[string]string{
	"forward": {"require_ack_response": "false", "ack_response_timeout": "190s", "send_timeout": "60s"},
	"elasticsearch": {
		"reload_connections": "true", "reconnect_on_error": "false", "reload_on_failure": "false",
		"resurrect_after": "60s", "request_timeout": "5s", "write_operation": "index",
		"unrecoverable_error_types":      `["out_of_memory_error","es_rejected_execution_exception"]`,
		"bulk_message_request_threshold": "-1",
	},
	"opensearch": {
		"reload_connections": "true", "reconnect_on_error": "false", "reload_on_failure": "false",
		"resurrect_after": "60s", "request_timeout": "5s", "write_operation": "index",
		"unrecoverable_error_types":      `["out_of_memory_error","rejected_execution_exception"]`,
		"bulk_message_request_threshold": "-1",
	},
	"udp":    {"message_length_limit": "4096"},
	"syslog": {"message_length_limit": "2048"},
}

// fdAliases: plugins that take another plugin's defaults.
var fdAliases = map[string]string{
	"elasticsearch_data_stream": "elasticsearch",
	"elasticsearch_dynamic":     "elasticsearch",
	"opensearch_data_stream":    "opensearch",
}

// fbInputDefaults: src/flb_input.c input_global_properties
// (FLB_CONFIG_MAP_SIZE "mem_buf_limit" "0", FLB_CONFIG_MAP_STR
// "storage.type" "memory").
var fbInputDefaults = map[string]string{"mem_buf_limit": "0", "storage.type": "memory"}

// fbOutputDefaults: src/flb_output.c output_global_properties
// (FLB_CONFIG_MAP_STR "retry_limit" "1").
var fbOutputDefaults = map[string]string{"retry_limit": "1"}

// fbPluginDefaults, by plugin name:
//   - forward (output): plugins/out_forward/forward.c config_map
//     ("require_ack_response" "false")
//   - es: plugins/out_es/es.c config_map ("generate_id" "false",
//     "suppress_type_name" "false", "write_operation" "create", "id_key"
//     NULL, "buffer_size" FLB_ES_DEFAULT_HTTP_MAX "512k")
//   - opensearch: plugins/out_opensearch/opensearch.c (the same)
//   - udp (input): plugins/in_udp/udp_config.c (chunk_size
//     FLB_IN_UDP_CHUNK "32768" bytes, and Chunk_Size given in KiB;
//     buffer_size = chunk_size)
//   - syslog (input): plugins/in_syslog/syslog.c ("mode" NULL, which
//     syslog_conf.c reads as unix_udp; "buffer_chunk_size"
//     FLB_SYSLOG_CHUNK "32768")
var fbPluginDefaults = map[string]map[string]string{
	"output/forward":    {"require_ack_response": "false"},
	"output/es":         {"generate_id": "false", "suppress_type_name": "false", "write_operation": "create", "buffer_size": "512k"},
	"output/opensearch": {"generate_id": "false", "suppress_type_name": "false", "write_operation": "create", "buffer_size": "512k"},
	"input/udp":         {"chunk_size": "32768"},
	"input/syslog":      {"mode": "unix_udp", "buffer_chunk_size": "32768"},
}

// fbServiceDefaults: src/flb_config.c service_configs
// (FLB_CONF_STR_HTTP_SERVER "http_server" defaults to off).
var fbServiceDefaults = map[string]string{"http_server": "off"}

// defaultFor returns the shipper's default for a parameter of plugin p,
// in section sec (nil: the plugin's own parameters; a <buffer> section:
// the buffer's).
func defaultFor(shipper Shipper, p *Plugin, sec *Section, name string) (string, bool) {
	if shipper == FluentBit {
		if p == nil {
			v, ok := fbServiceDefaults[name]
			return v, ok
		}
		if v, ok := fbPluginDefaults[string(p.Kind)+"/"+p.Type][name]; ok {
			return v, true
		}
		switch p.Kind {
		case Input:
			v, ok := fbInputDefaults[name]
			return v, ok
		case Output:
			v, ok := fbOutputDefaults[name]
			return v, ok
		}
		return "", false
	}
	if sec != nil && sec.Name == "buffer" {
		bt := "memory"
		if t := sec.Get("@type"); t != nil && t.State != Unknown {
			bt = t.Value
		} else if p != nil && p.Type == "file" {
			bt = "file"
		}
		if bt == "file" || bt == "file_single" {
			if v, ok := fdFileBufferDefaults[name]; ok {
				return v, true
			}
		}
		if name == "@type" {
			return bt, true
		}
		v, ok := fdBufferDefaults[name]
		return v, ok
	}
	if p == nil {
		return "", false
	}
	t := p.Type
	if a, ok := fdAliases[t]; ok {
		t = a
	}
	if p.Kind == Input && t == "forward" {
		return "", false
	}
	v, ok := fdPluginDefaults[t][name]
	return v, ok
}

// Setting returns the parameter name of plugin p as the shipper sees it:
// the one written in sec (nil for the plugin's own section), else the
// default with State Default (positioned at the section), else nil.
func (c *Config) Setting(p *Plugin, sec *Section, name string) *Param {
	s := sec
	if s == nil && p != nil {
		s = p.Section
	}
	if s == nil && p == nil {
		s = c.Service
	}
	if got := s.Get(name); got != nil && got.State != Default {
		return got
	}
	v, ok := defaultFor(c.Shipper, p, sec, name)
	if !ok {
		return nil
	}
	pos := Pos{File: c.Main, Line: 1}
	switch {
	case s != nil && s.Pos.Line > 0:
		pos = s.Pos
	case p != nil:
		pos = p.Pos
	}
	return &Param{Key: name, Name: name, Value: v, State: Default, Pos: pos, Note: "default"}
}

// Buffer returns a Fluentd output's <buffer> section (written, or built
// from v0.12 parameters), or nil when it has none.
func (p *Plugin) Buffer() *Section {
	if b := p.Section.Sub("buffer"); len(b) > 0 {
		return b[len(b)-1]
	}
	return nil
}

// Secondary returns a Fluentd output's <secondary> section, or nil.
func (p *Plugin) Secondary() *Section {
	if s := p.Section.Sub("secondary"); len(s) > 0 {
		return s[0]
	}
	return nil
}

// IsElasticsearch reports whether an output writes to Elasticsearch or
// OpenSearch with a bulk API.
func (p *Plugin) IsElasticsearch() bool {
	switch p.Type {
	case "elasticsearch", "elasticsearch_data_stream", "elasticsearch_dynamic", "opensearch", "opensearch_data_stream", "es":
		return true
	}
	return false
}

// IsOpenSearch reports whether the output is an OpenSearch plugin.
func (p *Plugin) IsOpenSearch() bool { return strings.HasPrefix(p.Type, "opensearch") }
