package esclient

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// NodesHTTP is the answer of GET _nodes/http: what a sniffing client
// replaces its connection pool with.
type NodesHTTP struct {
	Nodes map[string]NodeHTTP `json:"nodes"`
}

// NodeHTTP is one node of NodesHTTP.
type NodeHTTP struct {
	Name string `json:"name"`
	// HTTP is nil when the node publishes no HTTP address (HTTP disabled
	// on it, or a proxy filtering the answer).
	HTTP *HTTPInfo `json:"http"`
}

// HTTPInfo is a node's HTTP module.
type HTTPInfo struct {
	PublishAddress string `json:"publish_address"`
	// MaxContentLength is http.max_content_length: larger bulk bodies get
	// 413 (100 MiB by default).
	MaxContentLength int64 `json:"max_content_length_in_bytes"`
}

// NodesHTTP fetches _nodes/http.
func (c *Client) NodesHTTP(ctx context.Context) (*NodesHTTP, *Response, error) {
	var nh NodesHTTP
	r, err := c.GetJSON(ctx, "/_nodes/http", &nh)
	if err != nil {
		return nil, r, err
	}
	return &nh, r, nil
}

// MinMaxContentLength is the smallest http.max_content_length any node
// reports, 0 when none does: a bulk body must fit the node it lands on.
func (nh *NodesHTTP) MinMaxContentLength() int64 {
	var m int64
	for _, n := range nh.Nodes {
		if n.HTTP != nil && n.HTTP.MaxContentLength > 0 && (m == 0 || n.HTTP.MaxContentLength < m) {
			m = n.HTTP.MaxContentLength
		}
	}
	return m
}

// DialAddress is the host:port a sniffing client connects to for a node's
// http.publish_address, which Elasticsearch writes as "ip:port",
// "[ipv6]:port", or "name/ip:port" when http.publish_host is a name.
//
// For "name/ip:port" the name wins: the port comes from the address and
// the host is the name, resolved on this machine. That is what the
// clients logdoctor stands in for do: elasticsearch-transport's sniffer
// (the Ruby client under fluent-plugin-elasticsearch, 7.17,
// Sniffer#parse_publish_address) and elasticsearch-py 7.17
// (Transport._get_host_info, "Support 7.x host/ip:port behavior where
// http.publish_host has been set"). It is also what TLS needs, as the
// certificate names the host. A name this machine cannot resolve is then
// exactly the failure a shipper meets after a sniff, and es probe and the
// pipeline both see it because both dial this address.
func DialAddress(publish string) (string, error) {
	name, addr, hasName := strings.Cut(publish, "/")
	if !hasName {
		name, addr = "", publish
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("publish_address %q: %w", publish, err)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return "", fmt.Errorf("publish_address %q: bad port %q", publish, port)
	}
	if name != "" {
		host = name
	}
	if host == "" {
		return "", fmt.Errorf("publish_address %q: no host", publish)
	}
	return net.JoinHostPort(host, port), nil
}

// PublishedBase is the base URL a sniffing client uses for a node: the
// scheme of the URL it sniffed from and DialAddress.
func PublishedBase(scheme, publish string) (string, error) {
	a, err := DialAddress(publish)
	if err != nil {
		return "", err
	}
	return scheme + "://" + a, nil
}
