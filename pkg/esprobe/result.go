package esprobe

// Check is one timed step of the probe.
type Check struct {
	Name       string `json:"name"`
	Target     string `json:"target,omitempty"`
	OK         bool   `json:"ok"`
	DurationMS int64  `json:"duration_ms"`
	Detail     string `json:"detail"`
}

// Target is what one URL answered.
type Target struct {
	URL          string   `json:"url"`
	Reachable    bool     `json:"reachable"`
	Status       int      `json:"status,omitempty"`
	Product      string   `json:"product,omitempty"` // elasticsearch or opensearch
	ProductHdr   bool     `json:"x_elastic_product"`
	Version      string   `json:"version,omitempty"`
	ClusterName  string   `json:"cluster_name,omitempty"`
	NodeName     string   `json:"node_name,omitempty"`
	LatencyMS    float64  `json:"latency_ms"`
	DNSMS        float64  `json:"dns_ms,omitempty"`
	Addresses    []string `json:"addresses,omitempty"`
	Error        string   `json:"error,omitempty"`
	errKind      string
	unauthorized int
}

// Health is _cluster/health.
type Health struct {
	Status              string  `json:"status"`
	Nodes               int     `json:"number_of_nodes"`
	DataNodes           int     `json:"number_of_data_nodes"`
	ActiveShards        int     `json:"active_shards"`
	UnassignedShards    int     `json:"unassigned_shards"`
	PendingTasks        int     `json:"number_of_pending_tasks"`
	ActiveShardsPercent float64 `json:"active_shards_percent_as_number"`
}

// Node is one entry of _nodes/http and whether its published address
// accepts a TCP connection from here.
type Node struct {
	ID               string  `json:"id"`
	Name             string  `json:"name"`
	PublishAddress   string  `json:"publish_address"`
	Reachable        bool    `json:"reachable"`
	ConnectMS        float64 `json:"connect_ms"`
	Error            string  `json:"error,omitempty"`
	MaxContentLength int64   `json:"max_content_length_in_bytes"`
}

// Pool is the keep-alive and connection pool check.
type Pool struct {
	Requests        int     `json:"requests"`
	NewConnections  int     `json:"new_connections"`
	Reused          int     `json:"reused"`
	ReuseRatio      float64 `json:"reuse_ratio"`
	SequentialNew   int     `json:"sequential_new_connections"`
	ConcurrentNew   int     `json:"concurrent_new_connections"`
	NewPerRequest   float64 `json:"new_connections_per_request"`
	ServerOpened    int64   `json:"server_total_opened_delta"` // during the pool check; -1 when _nodes/stats was unavailable
	OwnOpened       int64   `json:"probe_opened"`              // connections the probe opened meanwhile
	OthersOpened    int64   `json:"other_clients_opened"`      // over the whole run
	OthersPerSecond float64 `json:"other_clients_opened_per_second"`
	WindowMS        int64   `json:"window_ms"`
	IdleWaitMS      int64   `json:"idle_wait_ms"`
	IdleClosed      bool    `json:"idle_closed"`
	IdleClosedAfter float64 `json:"idle_closed_after_ms,omitempty"`
}

// Pressure is the write pressure, summed over nodes, with deltas over the
// probe's run.
type Pressure struct {
	WriteQueue          int64 `json:"write_queue"`
	WriteActive         int64 `json:"write_active"`
	WriteRejected       int64 `json:"write_rejected"`
	WriteRejectedDelta  int64 `json:"write_rejected_delta"`
	PressureRejected    int64 `json:"indexing_pressure_rejections"`
	PressureRejectDelta int64 `json:"indexing_pressure_rejections_delta"`
	IntervalMS          int64 `json:"interval_ms"`
	IndexingPressure    bool  `json:"indexing_pressure_reported"`
}

// Bulk is the idempotency check.
type Bulk struct {
	Index        string   `json:"index"`
	ID           string   `json:"id"`
	Statuses     []int    `json:"statuses"`
	ItemErrors   []string `json:"item_errors,omitempty"`
	Count        int      `json:"count"`
	LatencyP50MS float64  `json:"latency_p50_ms"`
	LatencyP99MS float64  `json:"latency_p99_ms"`
	Idempotent   bool     `json:"idempotent"`
	Cleaned      bool     `json:"cleaned_up"`
}

// Result is the probe's data.
type Result struct {
	Targets          []Target  `json:"targets"`
	Health           *Health   `json:"health,omitempty"`
	Nodes            []Node    `json:"nodes"`
	Pool             *Pool     `json:"pool,omitempty"`
	Pressure         *Pressure `json:"pressure,omitempty"`
	Bulk             *Bulk     `json:"bulk,omitempty"`
	MaxContentLength int64     `json:"max_content_length_in_bytes,omitempty"`
	BulkSize         int64     `json:"bulk_size"`
	RequestTimeoutMS int64     `json:"request_timeout_ms"`
	LatencyP99MS     float64   `json:"latency_p99_ms"`
	Checks           []Check   `json:"checks"`
}
