// Package esclient is the one HTTP client of Elasticsearch and OpenSearch
// that es probe, es dups, the pipeline's output and smoke share, so that
// each idea of talking to a cluster has one home:
//
//   - URL arguments: ParseURL (scheme http by default, userinfo moved out
//     of the URL into Auth, a path kept as a prefix, redacted in errors);
//   - credentials: Auth (basic or API key), never printed;
//   - TLS: TLSConfig from a *x509.CertPool and an insecure switch;
//   - requests: Client.Do and Client.GetJSON with bounded body reads
//     (ErrBodyTooLarge, never a silent cut), optional gzip request bodies
//     (Gzipper), and Elasticsearch's error answers as *StatusError;
//   - failures as types: ErrorKind sorts a request error into dns,
//     refused, timeout, tls and network with errors.Is and errors.As,
//     never by matching error text;
//   - discovery: the _nodes/http answer (NodesHTTP) and the one policy for
//     the address a sniffing client dials (DialAddress).
//
// The HTTP transports stay with their users: the probe counts the
// connections it opens and the pipeline pools them per worker, so each
// tunes its own http.Transport and hands it to a Client.
//
// It speaks plain HTTP and never insists on the X-Elastic-Product header,
// so Elasticsearch 7 and 8 and OpenSearch 1 and 2 all work.
package esclient
