package exporter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/exporter-toolkit/web"
)

// DefaultListen is where the exporter listens unless told otherwise:
// loopback, so that nothing is exposed by accident; the DaemonSet sets the
// pod IP.
const DefaultListen = "127.0.0.1:9731"

// Handler serves /metrics from reg, /healthz, and a landing page at /.
// A series that cannot be gathered (two sources a user named alike) is
// left out and logged to log, rather than failing the whole scrape.
func Handler(reg *prometheus.Registry, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		Registry:      reg, // promhttp_metric_handler_errors_total
		ErrorHandling: promhttp.ContinueOnError,
		ErrorLog:      slogPrinter{log},
		// A scrape only copies samples; this bounds a pathological one
		// (a client that reads slowly does not count against it).
		Timeout:             10 * time.Second,
		MaxRequestsInFlight: 8,
	}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, `<!doctype html><title>logdoctor exporter</title><h1>logdoctor exporter</h1><p><a href="metrics">metrics</a> · <a href="healthz">healthz</a></p>`)
	})
	return mux
}

// ValidateWebConfig checks an exporter-toolkit web configuration file
// (TLS and basic auth) before serving, so a mistake is an error at start
// rather than at the first scrape.
func ValidateWebConfig(path string) error {
	if path == "" {
		return nil
	}
	return web.Validate(path)
}

// Serve serves h on l until ctx is done, with TLS and basic auth as the web
// configuration file at webConfig says (the exporter-toolkit format every
// Prometheus exporter reads: tls_server_config, basic_auth_users with
// bcrypt hashes, http_server_config; "" serves plain HTTP). The file is
// read again on every connection, so certificates can rotate.
func Serve(ctx context.Context, l net.Listener, h http.Handler, webConfig string, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	systemd := false
	flags := &web.FlagConfig{WebListenAddresses: &[]string{}, WebSystemdSocket: &systemd, WebConfigFile: &webConfig}
	done := make(chan error, 1)
	go func() { done <- web.Serve(l, srv, flags, log) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := srv.Shutdown(sctx)
	if serr := <-done; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		return serr
	}
	return err
}

// slogPrinter is promhttp's error log on a slog.Logger.
type slogPrinter struct{ log *slog.Logger }

func (p slogPrinter) Println(v ...any) { p.log.Warn(fmt.Sprint(v...)) }
