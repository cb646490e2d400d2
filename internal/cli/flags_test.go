package cli

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// flagCase is one bad value for a flag and what logdoctor must answer:
// the exit code and text that names the flag and what it accepts.
type flagCase struct {
	args []string // after the command and its base arguments
	code ExitCode
	want string // in stderr, besides the flag's own name
}

// usage and missing build the two kinds of case: a value outside the
// flag's meaning (exit 2) and a file or directory that cannot be used
// (exit 1, the same code for every such flag: docs/README.md).
func usage(want string, args ...string) flagCase {
	return flagCase{args: args, code: ExitUsage, want: want}
}
func missing(want string, args ...string) flagCase {
	return flagCase{args: args, code: ExitError, want: want}
}

// TestEveryFlagRefusesBadValues walks the whole command tree: every flag of
// every command must either have bad-value cases here or be listed in
// anyText with the reason any value is fine. A new flag without either
// fails this test, so it cannot ship without deciding what it accepts.
func TestEveryFlagRefusesBadValues(t *testing.T) {
	tmp := t.TempDir()
	file := filepath.Join(tmp, "a-file")
	if err := os.WriteFile(file, []byte("not a directory\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	gone := filepath.Join(tmp, "missing.pem")
	conf := filepath.Join(tmp, "fluent.conf")
	if err := os.WriteFile(conf, []byte("<match **>\n  @type null\n</match>\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	underFile := filepath.Join(file, "sub") // ENOTDIR whoever runs the test, root included

	// base keeps a command that wrongly accepted a case short and local.
	base := map[string][]string{
		"forward probe": {"127.0.0.2:1", "--ack-timeout", "1s"},
		"forward serve": {"--listen", "127.0.0.1:0", "--duration", "1ms"},
		"pipeline run":  {"--forward", "127.0.0.1:0", "--duration", "1ms", "--buffer-dir", filepath.Join(tmp, "buf")},
		"es probe":      {"http://127.0.0.2:1", "--idle-wait", "0"},
		"es dups":       {"http://127.0.0.2:1", "--index", "x"},
		"es serve":      {"--listen", "127.0.0.1:0", "--duration", "1ms"},
		"smoke":         {"--count", "1", "--no-probes", "--timeout", "2s"},
		"udp-frag":      {"--duration", "1ms", "-i", "lo"},
		"sockets":       {"--no-processes"},
		"config check":  {conf},
		"doctor":        {"--pid", "1", "--interval", "1ms", "--no-probes", "--step-timeout", "1s"},
		"exporter":      {"--listen", "127.0.0.1:0", "--duration", "1ms"},
	}
	const (
		durPos  = "want a duration above 0"
		durZero = "or a positive duration"
	)
	cases := map[string][]flagCase{
		// global
		"--output":  {usage("want table, json or sarif", "sockets", "--output="), usage("want table, json or sarif", "sockets", "-o", "xml")},
		"--fail-on": {usage("want never, warning or critical", "sockets", "--fail-on", "sometimes")},
		"--html":    {usage("want a file path", "sockets", "--html", ""), missing("not a directory", "sockets", "--html", filepath.Join(underFile, "r.html")), missing("is a directory", "sockets", "--html", tmp)},

		"sockets --peer":                {usage("accepted forms", "--peer", "bad peer!"), usage("accepted forms", "--peer", ":0")},
		"sockets --alias":               {usage("name=port", "--alias", "x")},
		"sockets --state":               {usage("unknown TCP state", "--state", "WAITING")},
		"sockets --by":                  {usage("want peer, process or state", "--by", "color")},
		"sockets --pid":                 {usage("want a process id", "--pid", "-1"), missing("--pid 2147483647", "--pid", "2147483647")},
		"sockets --proc-root":           {missing("no such file", "--proc-root", gone)},
		"sockets --watch":               {usage(durZero, "--watch", "-1s")},
		"sockets --count":               {usage("want 0 (until interrupted) or a number of samples", "--count", "-1"), usage("--count needs --watch", "--count", "3")},
		"sockets --close-wait":          {usage("want 0 (off) or a number of sockets", "--close-wait", "-5")},
		"sockets --close-wait-critical": {usage("want 0 (off) or a number of sockets", "--close-wait-critical", "-5")},
		"sockets --time-wait":           {usage("want 0 (off) or a number of sockets", "--time-wait", "-5")},
		"sockets --time-wait-ratio":     {usage("want a ratio of 0 or more", "--time-wait-ratio", "-5")},
		"sockets --send-q":              {usage("want 0 (off) or a number of bytes", "--send-q", "-1")},
		"sockets --source":              {usage("want auto, netlink or proc", "--source", "kernel")},
		"sockets --retransmits":         {usage("want 0 (off) or a number of timeouts", "--retransmits", "-1")},
		"sockets --retrans-critical":    {usage(durZero, "--retrans-critical", "-1s")},
		"sockets --zero-window-probes":  {usage("want 0 (off) or a number of probe timeouts", "--zero-window-probes", "-1")},
		"sockets --syn-sent":            {usage("want 0 (off) or a number of sockets", "--syn-sent", "-1")},

		"udp-frag --read":                 {missing("no such file", "--read", gone), missing("is a directory", "--read", tmp)},
		"udp-frag --interface":            {missing(`"no-such-if0"`, "--interface", "no-such-if0")},
		"udp-frag --port":                 {usage("want ports from 1 to 65535", "--port", "0"), usage("want ports from 1 to 65535", "-p", "70000")},
		"udp-frag --duration":             {usage(durZero, "--duration", "-1s")},
		"udp-frag --count":                {usage("want 0 (no limit) or a number of datagrams", "--count", "-5")},
		"udp-frag --mtu":                  {usage("want 0 (auto) or 68..65536", "--mtu", "-5"), usage("want 0 (auto) or 68..65536", "--mtu", "67"), usage("68..65536", "--mtu", "70000")},
		"udp-frag --reassembly-timeout":   {usage(durPos, "--reassembly-timeout", "0")},
		"udp-frag --max-reassemblies":     {usage("want a number from 1", "--max-reassemblies", "0")},
		"udp-frag --max-reassembly-bytes": {usage("want a number of bytes from 65535", "--max-reassembly-bytes", "100")},
		"udp-frag --snaplen":              {usage("want a number of bytes from 64 to 262144", "--snaplen", "10")},
		"udp-frag --write":                {missing("not a directory", "--write", underFile)},
		"udp-frag --proc":                 {missing("no such file", "--proc", gone)},
		"udp-frag --send":                 {usage("want HOST:PORT with a port from 1 to 65535", "--send", "127.0.0.1:0"), usage("want HOST:PORT", "--send", "nocolon")},
		"udp-frag --sizes":                {usage("want a number of bytes from 96", "--sizes", "12")},
		"udp-frag --probes":               {usage("want a number of probes per size from 1 to 1000", "--probes", "0")},
		"udp-frag --wait":                 {usage(durPos, "--wait", "-1s")},
		"udp-frag --listen":               {usage("want HOST:PORT with a port from 0 to 65535", "--listen", "127.0.0.1:99999")},

		"config check --format":                {usage("fluentd, fluentbit or fluent-bit", "--format", "vector")},
		"config check --mtu":                   {usage("want 0 (this host's smallest) or 68..65535", "--mtu", "20")},
		"config check --es-version":            {usage("--es-version", "--es-version", "banana")},
		"config check --es-max-content-length": {usage("want a size like 100mb", "--es-max-content-length", "lots")},
		"config check --env":                   {usage("want KEY=VALUE", "--env", "novalue")},

		"doctor --pid":          {usage("want a process id", "--pid", "-1"), missing("--pid 2147483647: no such process", "--pid", "2147483647")},
		"doctor --shipper":      {usage(`want "", fluentd or fluent-bit`, "--shipper", "vector")},
		"doctor --config":       {missing("no such file", "--config", gone), missing("is a directory", "--config", tmp)},
		"doctor --interval":     {usage("want a duration of 1ms or more", "--interval", "0")},
		"doctor --step-timeout": {usage("want a duration of 1ms or more", "--step-timeout", "-1s")},
		"doctor --proc-root":    {missing("no such file", "--proc-root", gone)},
		"doctor --source":       {usage("want auto, netlink or proc", "--source", "kernel")},

		"forward probe --tag":               {usage("want a non-empty tag", "--tag", "")},
		"forward probe --mode":              {usage("bogus", "--mode", "bogus"), usage("load mode (--count) sends one --mode", "--count", "10", "--mode", "packed,message")},
		"forward probe --ack-timeout":       {usage(durPos, "--ack-timeout", "0")},
		"forward probe --slow-ack":          {usage(durPos, "--slow-ack", "-1s")},
		"forward probe --helo-wait":         {usage(durPos, "--helo-wait", "0")},
		"forward probe --ca":                {missing("no such file", "--ca", gone)},
		"forward probe --cert":              {missing("no such file", "--cert", gone, "--key", gone), usage("go together", "--cert", gone)},
		"forward probe --key":               {missing("no such file", "--key", gone, "--cert", gone), usage("go together", "--key", gone)},
		"forward probe --tls-ca":            {missing("no such file", "--tls-ca", gone)},
		"forward probe --tls-cert":          {missing("no such file", "--tls-cert", gone, "--tls-key", gone), usage("go together", "--tls-cert", gone)},
		"forward probe --tls-key":           {missing("no such file", "--tls-key", gone, "--tls-cert", gone), usage("go together", "--tls-key", gone)},
		"forward probe --count":             {usage("want 0 (canary mode) or a number of events", "--count", "-5")},
		"forward probe --rate":              {usage("want 0 (as fast as acks come) or a positive number", "--rate", "-1")},
		"forward probe --warmup":            {usage(durZero, "--warmup", "-1s"), usage("for load mode", "--warmup", "1s")},
		"forward probe --concurrency":       {usage("want a number of connections from 1 to 4096", "--concurrency", "0")},
		"forward probe --chunk-events":      {usage("want a number of events from 1 to 1000000", "--chunk-events", "0")},
		"forward probe --record-size":       {usage("want a number of bytes from 1", "--record-size", "-5")},
		"forward probe --heartbeat-timeout": {usage(durPos, "--heartbeat-timeout", "0s")},
		"forward probe --handshake-timeout": {usage(durPos, "--handshake-timeout", "0")},
		"forward probe --peer-kind":         {usage("fluentd or fluent-bit", "--peer-kind", "vector")},

		"forward serve --listen":            {usage("want HOST:PORT with a port from 0 to 65535", "--listen", "127.0.0.1:99999")},
		"forward serve --ack":               {usage("want always, never, wrong, delay=DURATION or drop-rate=P", "--ack", "sometimes"), usage("want a probability from 0 to 1", "--ack", "drop-rate=2")},
		"forward serve --close-after":       {usage("want 0 (never) or a request number", "--close-after", "-1")},
		"forward serve --user":              {usage("--user wants USER:PASSWORD", "--user", "alice", "--shared-key", "k"), usage("--user needs --shared-key", "--user", "alice:pw")},
		"forward serve --tls-cert":          {missing("no such file", "--tls-cert", gone, "--tls-key", gone), usage("go together", "--tls-cert", gone)},
		"forward serve --tls-key":           {missing("no such file", "--tls-key", gone, "--tls-cert", gone), usage("go together", "--tls-key", gone)},
		"forward serve --tls-client-ca":     {usage("--tls-client-ca needs --tls-cert", "--tls-client-ca", gone)},
		"forward serve --duration":          {usage(durZero, "--duration", "-1s")},
		"forward serve --max-request-bytes": {usage("want a number of bytes of 1 or more", "--max-request-bytes", "0")},
		"forward serve --read-timeout":      {usage(durZero, "--read-timeout", "-1s")},
		"forward serve --idle-timeout":      {usage(durZero, "--idle-timeout", "-1s")},
		"forward serve --max-conns":         {usage("want 0 (no limit) or a number of connections", "--max-conns", "-1")},

		"forward serve --max-decompressed-size": {usage("want a size of 1 byte or more", "--max-decompressed-size", "0")},
		"forward serve --max-in-flight":         {usage("want 0 (no bound) or a size like 256MiB", "--max-in-flight", "lots")},
		"forward serve --first-request-timeout": {usage(durZero, "--first-request-timeout", "-1s")},

		"pipeline run --forward":               {usage("want HOST:PORT with a port from 0 to 65535", "--forward", "127.0.0.1:99999"), usage("no input", "--forward", "")},
		"pipeline run --forward-tls-cert":      {missing("no such file", "--forward-tls-cert", gone, "--forward-tls-key", gone), usage("go together", "--forward-tls-cert", gone)},
		"pipeline run --forward-tls-key":       {missing("no such file", "--forward-tls-key", gone, "--forward-tls-cert", gone), usage("go together", "--forward-tls-key", gone)},
		"pipeline run --max-conns":             {usage("want a number from 1 to 1048576", "--max-conns", "0")},
		"pipeline run --read-timeout":          {usage(durPos, "--read-timeout", "0")},
		"pipeline run --idle-timeout":          {usage(durZero, "--idle-timeout", "-1s")},
		"pipeline run --max-request-size":      {usage("want a size of 1 byte or more", "--max-request-size", "0"), usage("want a size", "--max-request-size", "lots")},
		"pipeline run --max-decompressed-size": {usage("want a size of 1 byte or more", "--max-decompressed-size", "-1MiB")},
		"pipeline run --max-in-flight":         {usage("want 0 (no bound) or a size like 256MiB", "--max-in-flight", "-1MiB")},
		"pipeline run --first-request-timeout": {usage(durZero, "--first-request-timeout", "-1s")},
		"pipeline run --udp":                   {usage("want HOST:PORT with a port from 0 to 65535", "--udp", "127.0.0.1:70000")},
		"pipeline run --udp-tag":               {usage("want a non-empty tag", "--udp-tag", "")},
		"pipeline run --udp-max-datagram":      {usage("want a number of bytes from 1 to 65507", "--udp-max-datagram", "0"), usage("65507", "--udp-max-datagram", "70000")},
		"pipeline run --udp-rcvbuf":            {usage("want a size like 8MiB", "--udp-rcvbuf", "-1")},
		"pipeline run --buffer-dir":            {missing("not a directory", "--buffer-dir", underFile)},
		"pipeline run --buffer-max":            {usage("want a size of 64KiB or more", "--buffer-max", "0"), usage("want a size of 64KiB or more", "--buffer-max", "lots")},
		"pipeline run --buffer-full-wait":      {usage(durPos, "--buffer-full-wait", "-1s")},
		"pipeline run --es":                    {usage("want an http:// or https:// URL", "--es", "ftp://x"), usage("embedded and URLs do not mix", "--es", "embedded,http://127.0.0.1:9200")},
		"pipeline run --es-max-docs":           {usage("want 0 (no bound) or more documents", "--es-max-docs", "-1")},
		"pipeline run --es-data":               {missing("not a directory", "--es-data", underFile)},
		"pipeline run --es-ca":                 {missing("no such file", "--es-ca", gone)},
		"pipeline run --es-password-file":      {missing("no such file", "--es-password-file", gone)},
		"pipeline run --es-workers":            {usage("want a number from 1 to 256", "--es-workers", "0")},
		"pipeline run --batch-count":           {usage("want a number of events from 1 to 1000000", "--batch-count", "-1")},
		"pipeline run --batch-size":            {usage("want a size of 1KiB or more", "--batch-size", "10")},
		"pipeline run --flush-interval":        {usage(durPos, "--flush-interval", "-1s")},
		"pipeline run --es-timeout":            {usage(durPos, "--es-timeout", "0")},
		"pipeline run --retry-timeout":         {usage("want a positive duration like 1h, or a negative one", "--retry-timeout", "0")},
		"pipeline run --index":                 {usage("--index", "--index", "logs-{nope}")},
		"pipeline run --dead-letter":           {missing("not a directory", "--dead-letter", underFile)},
		"pipeline run --metrics":               {usage("want HOST:PORT with a port from 0 to 65535", "--metrics", "localhost")},
		"pipeline run --shutdown-timeout":      {usage(durZero, "--shutdown-timeout", "-1s")},
		"pipeline run --duration":              {usage(durZero, "--duration", "-1s")},
		"pipeline run --log-file":              {missing("not a directory", "--log-file", underFile)},
		"pipeline run --log-format":            {usage("want text or json", "--log-format", "xml")},
		"pipeline run --log-level":             {usage("want debug, info, warn or error", "--log-level", "loud")},

		"es probe --password":      {usage("--password and --password-file are exclusive", "--password", "x", "--password-file", file)},
		"es probe --password-file": {missing("no such file", "--password-file", gone)},
		"es probe --ca":            {missing("no such file", "--ca", gone)},
		"es probe --es-password-file": {missing("no such file", "--es-password-file", gone),
			usage("--password and --es-password-file are exclusive", "--password", "x", "--es-password-file", file)},
		"es probe --es-ca":           {missing("no such file", "--es-ca", gone)},
		"es probe --es":              {usage("want an http:// or https:// URL", "--es", "ftp://x")},
		"es probe --timeout":         {usage(durPos, "--timeout", "0")},
		"es probe --bulk-size":       {usage("want a size like 8MiB", "--bulk-size", "lots"), usage("want a size like 8MiB", "--bulk-size", "0")},
		"es probe --request-timeout": {usage(durPos, "--request-timeout", "-1s")},
		"es probe --sequential":      {usage("want a number of requests from 1 to 10000", "--sequential", "0")},
		"es probe --concurrent":      {usage("want a number of requests from 1 to 1000", "--concurrent", "0")},
		"es probe --idle-wait":       {usage(durZero, "--idle-wait", "-1s")},
		"es probe --bulk-samples":    {usage("want a number from 2 (one create, one replay)", "--bulk-samples", "1")},

		"es dups --password":         {usage("--password and --password-file are exclusive", "--password", "x", "--password-file", file)},
		"es dups --password-file":    {missing("no such file", "--password-file", gone)},
		"es dups --ca":               {missing("no such file", "--ca", gone)},
		"es dups --es-password-file": {missing("no such file", "--es-password-file", gone)},
		"es dups --es-ca":            {missing("no such file", "--es-ca", gone)},
		"es dups --es":               {usage("want an http:// or https:// URL", "--es", "ftp://x"), usage("--es: 2 URLs, want 1", "--es", "http://127.0.0.2:2")},
		"es dups --timeout":          {usage(durPos, "--timeout", "-1s")},
		"es dups --index":            {usage("--index is required", "--index", "")},
		"es dups --field":            {usage("--field and --fields are exclusive", "--field", "a", "--fields", "b")},
		"es dups --fields":           {usage("--field and --fields are exclusive", "--fields", "b", "--field", "a")},
		"es dups --max-docs":         {usage("want a number of documents from 1", "--max-docs", "0"), usage("want a number of documents from 1", "--max-docs", "-5")},
		"es dups --examples":         {usage("want a number from 0 to 1000", "--examples", "-1")},

		"es serve --listen":             {usage("want HOST:PORT with a port from 0 to 65535", "--listen", "127.0.0.1:99999")},
		"es serve --version":            {usage("want 7.x or 8.x", "--version", "6.8.0"), usage("want 1.x or 2.x", "--distribution", "opensearch", "--version", "5.0.0")},
		"es serve --distribution":       {usage("want elasticsearch or opensearch", "--distribution", "solr")},
		"es serve --nodes":              {usage("want a number of nodes from 1 to 64", "--nodes", "0")},
		"es serve --data":               {missing("not a directory", "--data", underFile)},
		"es serve --max-content-length": {usage("want a size like 100MiB", "--max-content-length", "0")},
		"es serve --max-docs":           {usage("want 0 (no bound) or a number of documents", "--max-docs", "-1")},
		"es serve --user":               {usage("--user needs --password", "--user", "elastic")},
		"es serve --tls-cert":           {missing("no such file", "--tls-cert", gone, "--tls-key", gone), usage("go together", "--tls-cert", gone)},
		"es serve --tls-key":            {missing("no such file", "--tls-key", gone, "--tls-cert", gone), usage("go together", "--tls-key", gone)},
		"es serve --duration":           {usage(durZero, "--duration", "-1s")},
		"es serve --reject-rate":        {usage("want a fraction from 0 to 1", "--reject-rate", "2")},
		"es serve --fail-rate":          {usage("want a fraction from 0 to 1", "--fail-rate", "-0.5")},
		"es serve --fail-status":        {usage("want 429, 500, 502, 503 or 504", "--fail-status", "200")},
		"es serve --drop-rate":          {usage("want a fraction from 0 to 1", "--drop-rate", "1.5")},
		"es serve --latency":            {usage(durZero, "--latency", "-1s")},
		"es serve --idle-close":         {usage(durZero, "--idle-close", "-1s")},
		"es serve --health":             {usage(`want "", green, yellow or red`, "--health", "purple")},
		"es serve --late-by":            {usage(durPos, "--late-by", "0")},
		"es serve --publish-address":    {usage("--publish-address", "--publish-address", "nocolon")},

		"es serve --inflight-requests-limit": {usage("want 0 (no limit) or a size like 256MiB", "--inflight-requests-limit", "lots")},

		"smoke --count":            {usage("want a number of canaries from 1 to 50000", "--count", "0"), usage("from 1 to 50000", "--count", "50001")},
		"smoke --chunk-size":       {usage("want a number of canaries from 1", "--chunk-size", "0")},
		"smoke --tag":              {usage("want a non-empty tag", "--tag", "")},
		"smoke --timeout":          {usage(durPos, "--timeout", "0s")},
		"smoke --poll":             {usage(durPos, "--poll", "-1s")},
		"smoke --settle":           {usage(durZero, "--settle", "-1s")},
		"smoke --ack-timeout":      {usage(durPos, "--ack-timeout", "0")},
		"smoke --forward":          {usage("want HOST:PORT with a port from 1 to 65535", "--forward", "nonsense"), usage("--forward needs --es", "--forward", "127.0.0.2:1")},
		"smoke --tls-ca":           {missing("no such file", "--tls-ca", gone)},
		"smoke --tls-cert":         {missing("no such file", "--tls-cert", gone, "--tls-key", gone), usage("go together", "--tls-cert", gone)},
		"smoke --tls-key":          {missing("no such file", "--tls-key", gone, "--tls-cert", gone), usage("go together", "--tls-key", gone)},
		"smoke --es":               {usage("want an http:// or https:// URL", "--es", "ftp://127.0.0.1:1"), usage("--es: 2 URLs, want 1", "--es", "http://127.0.0.2:1,http://127.0.0.2:2")},
		"smoke --index":            {usage("--forward and --es need --index", "--forward", "127.0.0.2:1", "--es", "http://127.0.0.2:1", "--index", "")},
		"smoke --es-password-file": {missing("no such file", "--es-password-file", gone)},
		"smoke --es-ca":            {missing("no such file", "--es-ca", gone)},
		"smoke --proc-root":        {missing("no such file", "--proc-root", gone)},

		"exporter --listen":              {usage("want HOST:PORT with a port from 0 to 65535", "--listen", "127.0.0.1:99999")},
		"exporter --web.config.file":     {missing("no such file", "--web.config.file", gone), missing("--web.config.file", "--web.config.file", conf)},
		"exporter --interval":            {usage("want a duration of 100ms or more", "--interval", "10ms")},
		"exporter --timeout":             {usage(durPos, "--timeout", "0"), usage("is longer than --interval", "--timeout", "20s")},
		"exporter --probe-interval":      {usage("want a duration of 100ms or more", "--probe-interval", "0")},
		"exporter --duration":            {usage(durZero, "--duration", "-1s")},
		"exporter --proc-root":           {missing("no such file", "--proc-root", gone)},
		"exporter --pid":                 {usage("want a process id", "--pid", "-1"), missing("--pid 2147483647", "--pid", "2147483647")},
		"exporter --source":              {usage("want auto, netlink or proc", "--source", "kernel")},
		"exporter --peer":                {usage("accepted forms", "--peer", "bad peer!")},
		"exporter --alias":               {usage("name=port", "--alias", "x")},
		"exporter --max-peers":           {usage("want a number of peers from 1 to 100000", "--max-peers", "0")},
		"exporter --udp-port":            {usage("want ports from 1 to 65535", "--udp-port", "0")},
		"exporter --shipper-pid":         {usage("want [NAME=]PID", "--shipper-pid", "0"), usage("want [NAME=]PID", "--shipper-pid", "a b=1"), missing("--shipper-pid 2147483647", "--shipper-pid", "2147483647")},
		"exporter --config":              {missing("no such file", "--config", gone)},
		"exporter --forward-probe":       {usage("want HOST:PORT with a port from 1 to 65535", "--forward-probe", "127.0.0.1:0")},
		"exporter --forward-ack-timeout": {usage(durPos, "--forward-ack-timeout", "0"), usage("must be shorter than --probe-interval", "--forward-probe", "127.0.0.2:1", "--forward-ack-timeout", "2m")},
		"exporter --forward-tag":         {usage("want a non-empty tag", "--forward-tag", "")},
		"exporter --es-probe":            {usage("want an http:// or https:// URL", "--es-probe", "ftp://x")},
		"exporter --es":                  {usage("want an http:// or https:// URL", "--es", "ftp://x")},
		"exporter --es-password-file":    {missing("no such file", "--es-password-file", gone)},
		"exporter --es-ca":               {missing("no such file", "--es-ca", gone)},
	}
	// Flags whose every value means something: names, keys and secrets.
	anyText := map[string]string{
		"forward probe --shared-key":        "a secret",
		"forward probe --username":          "a user name",
		"forward probe --password":          "a secret",
		"forward probe --hostname":          "the name sent in PING; empty means this host's",
		"forward probe --server-name":       "a TLS name",
		"forward serve --shared-key":        "a secret",
		"forward serve --hostname":          "the name sent in PONG (old name of --self-hostname)",
		"forward serve --self-hostname":     "the name sent in PONG",
		"pipeline run --self-hostname":      "the name sent in PONG; empty means logdoctor-pipeline.<host>",
		"pipeline run --forward-shared-key": "a secret",
		"pipeline run --udp-time-key":       `a record field, or "-"`,
		"pipeline run --es-user":            "a user name",
		"pipeline run --es-password":        "a secret",
		"pipeline run --es-api-key":         "a secret",
		"pipeline run --id-key":             "a record field",
		"pipeline run --tag-key":            `a record field, or "-"`,
		"es probe --user":                   "a user name",
		"es probe --es-user":                "a user name",
		"es probe --es-api-key":             "a secret",
		"es dups --es-user":                 "a user name",
		"es dups --es-api-key":              "a secret",
		"es probe --api-key":                "a secret",
		"es probe --index":                  "an index name (checked by the cluster)",
		"es dups --user":                    "a user name",
		"es dups --api-key":                 "a secret",
		"es serve --cluster-name":           "a name",
		"es serve --password":               "a secret",
		"es serve --api-key":                "a secret",
		"es serve --seed":                   "any random seed",
		"smoke --shared-key":                "a secret",
		"smoke --es-user":                   "a user name",
		"smoke --es-api-key":                "a secret",
		"exporter --forward-shared-key":     "a secret",
		"exporter --es-user":                "a user name",
		"exporter --es-api-key":             "a secret",
	}

	seen := map[string]bool{}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Name() == "help" || c.Name() == "completion" {
			return
		}
		path := strings.TrimPrefix(strings.TrimPrefix(c.CommandPath(), "logdoctor"), " ")
		c.LocalFlags().VisitAll(func(f *pflag.Flag) {
			if f.Name == "help" {
				return
			}
			key := strings.TrimSpace(path + " --" + f.Name)
			seen[key] = true
			cs := cases[key]
			if f.Value.Type() == "bool" {
				// pflag refuses anything but a boolean; a bool has no range.
				cs = append(cs, usage("invalid syntax", "--"+f.Name+"=maybe"))
			} else if _, ok := anyText[key]; !ok && len(cs) == 0 {
				t.Errorf("flag %q has no bad-value case and is not listed as free text: decide what it accepts", key)
				return
			}
			for _, tc := range cs {
				args := strings.Fields(path)
				global := key == "--output" || key == "--fail-on" || key == "--html"
				if global {
					args = nil // the cases name a command
				}
				args = append(args, base[path]...)
				args = append(args, tc.args...)
				code, out, errOut := runCLI(t, args...)
				if code != tc.code {
					t.Errorf("%s: exit %d, want %d\nstdout %q\nstderr %q", strings.Join(args, " "), code, tc.code, out, errOut)
					continue
				}
				if !strings.Contains(errOut, "--"+f.Name) || !strings.Contains(errOut, tc.want) {
					t.Errorf("%s: stderr must name --%s and say %q:\n%s", strings.Join(args, " "), f.Name, tc.want, errOut)
				}
				if out != "" {
					t.Errorf("%s: printed a report although it could not run:\n%s", strings.Join(args, " "), out)
				}
				if tc.code == ExitUsage {
					cmdPath := "logdoctor " + path
					if global {
						cmdPath = "logdoctor " + tc.args[0]
					}
					if !strings.HasSuffix(errOut, "Run '"+strings.TrimSpace(cmdPath)+" --help' for usage.\n") {
						t.Errorf("%s: usage error does not point at the command's help:\n%s", strings.Join(args, " "), errOut)
					}
				}
			}
		})
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(NewRootCmd(&Globals{}))

	var stale []string
	for k := range cases {
		if !seen[k] {
			stale = append(stale, k)
		}
	}
	for k := range anyText {
		if !seen[k] {
			stale = append(stale, k)
		}
	}
	sort.Strings(stale)
	if len(stale) > 0 {
		t.Errorf("cases for flags that do not exist: %v", stale)
	}
}

// TestUnknownSubcommandsAreUsageErrors: a typo in a subcommand anywhere in
// the tree is exit 2, never a help page with exit 0 that a CI script takes
// for success.
func TestUnknownSubcommandsAreUsageErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		help string
	}{
		{[]string{"no-such-command"}, "logdoctor"},
		{[]string{"pipeline", "rnu"}, "logdoctor pipeline"},
		{[]string{"forward", "porbe"}, "logdoctor forward"},
		{[]string{"es", "nope"}, "logdoctor es"},
		{[]string{"completion", "tcsh"}, "logdoctor completion"},
		{[]string{"help", "nosuch"}, "logdoctor"},
		{[]string{"help", "pipeline", "rnu"}, "logdoctor"},
		{[]string{"sockets", "extra"}, "logdoctor sockets"},
	} {
		code, out, errOut := runCLI(t, c.args...)
		if code != ExitUsage || out != "" || !strings.HasSuffix(errOut, "Run '"+c.help+" --help' for usage.\n") {
			t.Errorf("%v: exit %d stdout %q stderr %q", c.args, code, out, errOut)
		}
	}
	code, _, errOut := runCLI(t, "pipeline", "rnu")
	if !strings.Contains(errOut, `unknown command "rnu" for "logdoctor pipeline" (did you mean run?)`) {
		t.Errorf("pipeline rnu: exit %d %q", code, errOut)
	}
	// A parent on its own still shows its help.
	for _, args := range [][]string{{"pipeline"}, {"forward"}, {"es"}, {"help", "pipeline", "run"}} {
		if code, out, _ := runCLI(t, args...); code != ExitOK || !strings.Contains(out, "Usage:") {
			t.Errorf("%v: exit %d %q", args, code, out)
		}
	}
}
