package exporter

import (
	"context"
	"io/fs"
	"os"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/logdoctor/logdoctor/pkg/configcheck"
	"github.com/logdoctor/logdoctor/pkg/shipconf"
)

// ConfigConfig configures a configuration source.
type ConfigConfig struct {
	// Shipper labels the findings; Main is the configuration's main file.
	Shipper string
	Main    string
	// Target names the source in logdoctor_source_*; Main when "".
	Target string
	// Load reads the configuration (shipconf.Load with the shipper's
	// environment and file system); Stat looks at one of its files, to
	// tell when it changed. nil: the operating system's, no environment.
	Load  func(main string) (*shipconf.Config, error)
	Stat  func(name string) (fs.FileInfo, error)
	Check configcheck.Options
	Now   func() time.Time
}

// Config is the source of a configuration's findings (`config check`). It
// reads the files again only when one of them changed (size, time or
// inode: a Kubernetes ConfigMap update swaps the file under a symlink),
// so a run costs a few stat calls.
type Config struct {
	c        ConfigConfig
	stamps   map[string]fileStamp
	findings []Finding
	files    int
	loadedAt time.Time
	loads    float64

	reloadTime *prometheus.Desc
	reloads    *prometheus.Desc
	fileCount  *prometheus.Desc
}

type fileStamp struct {
	size int64
	mod  time.Time
	sys  any
}

// NewConfig returns a configuration source.
func NewConfig(c ConfigConfig) *Config {
	if c.Load == nil {
		c.Load = func(main string) (*shipconf.Config, error) { return shipconf.Load(main, shipconf.Options{}) }
	}
	if c.Stat == nil {
		c.Stat = os.Stat
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	l := []string{"shipper", "config"}
	return &Config{c: c,
		reloadTime: prometheus.NewDesc("logdoctor_config_last_reload_timestamp_seconds",
			"When the configuration was last read (Unix time); it is read again when one of its files changes.", l, nil),
		reloads: prometheus.NewDesc("logdoctor_config_reloads_total",
			"Times the configuration was read, the first included.", l, nil),
		fileCount: prometheus.NewDesc("logdoctor_config_files",
			"Files the configuration is made of, includes followed.", l, nil),
	}
}

func (c *Config) Name() string { return "config" }
func (c *Config) Target() string {
	if c.c.Target != "" {
		return c.c.Target
	}
	return c.c.Main
}

func (c *Config) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.reloadTime
	ch <- c.reloads
	ch <- c.fileCount
}

func (c *Config) Collect(ctx context.Context) (*Sample, error) {
	if c.stamps == nil || c.changed() {
		if err := c.load(); err != nil {
			c.stamps = nil
			return nil, err
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	l := []string{c.c.Shipper, c.c.Main}
	return &Sample{
		Findings: c.findings,
		Metrics: []prometheus.Metric{
			prometheus.MustNewConstMetric(c.reloadTime, prometheus.GaugeValue, float64(c.loadedAt.UnixNano())/1e9, l...),
			prometheus.MustNewConstMetric(c.reloads, prometheus.CounterValue, c.loads, l...),
			prometheus.MustNewConstMetric(c.fileCount, prometheus.GaugeValue, float64(c.files), l...),
		},
	}, nil
}

func (c *Config) load() error {
	// Stamp before reading: a change while we read is seen next time.
	stamps := map[string]fileStamp{}
	if st, err := c.stamp(c.c.Main); err == nil {
		stamps[c.c.Main] = st
	}
	cfg, err := c.c.Load(c.c.Main)
	if err != nil {
		return err
	}
	for _, f := range cfg.Files {
		if _, ok := stamps[f.Path]; ok {
			continue
		}
		if st, err := c.stamp(f.Path); err == nil {
			stamps[f.Path] = st
		}
	}
	fs, _ := configcheck.Analyze(cfg, c.c.Check)
	// A new slice: the engine still serves the previous one.
	var found []Finding
	for _, f := range fs {
		target := c.c.Main
		if file := evidenceString(f.Evidence, "file"); file != "" {
			target = file
			if line := evidenceString(f.Evidence, "line"); line != "" && line != "0" {
				target += ":" + line
			}
		}
		found = append(found, Finding{Finding: f, Target: target, Shipper: c.c.Shipper})
	}
	c.findings = found
	c.stamps, c.files = stamps, len(cfg.Files)
	c.loadedAt = c.c.Now()
	c.loads++
	return nil
}

func (c *Config) stamp(name string) (fileStamp, error) {
	fi, err := c.c.Stat(name)
	if err != nil {
		return fileStamp{}, err
	}
	return stampOf(fi), nil
}

func stampOf(fi fs.FileInfo) fileStamp {
	return fileStamp{size: fi.Size(), mod: fi.ModTime(), sys: inodeOf(fi)}
}

// stampFiles stamps the names that stat finds.
func stampFiles(stat func(string) (fs.FileInfo, error), names []string) map[string]fileStamp {
	out := map[string]fileStamp{}
	for _, n := range names {
		if fi, err := stat(n); err == nil {
			out[n] = stampOf(fi)
		}
	}
	return out
}

// changed reports whether a file read last time is gone or different, or
// the main file appeared.
func (c *Config) changed() bool {
	if _, ok := c.stamps[c.c.Main]; !ok {
		return true
	}
	for name, old := range c.stamps {
		st, err := c.stamp(name)
		if err != nil || st != old {
			return true
		}
	}
	return false
}

// inodeOf is the file's device and inode, where the platform says.
func inodeOf(fi fs.FileInfo) any {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return [2]uint64{uint64(st.Dev), st.Ino}
	}
	return nil
}
