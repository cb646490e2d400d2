// Command configgen writes a large configuration for bench/config.sh: a
// main file including FILES files that together hold about LINES lines of
// sources, filters and outputs with buffers, in Fluentd's or Fluent Bit's
// classic format.
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"
)

func main() {
	dir := flag.String("dir", "", "output directory")
	files := flag.Int("files", 200, "included files")
	lines := flag.Int("lines", 10000, "total lines")
	format := flag.String("format", "fluentd", "fluentd or fluentbit")
	flag.Parse()
	if *dir == "" {
		log.Fatal("-dir is required")
	}
	if err := os.MkdirAll(filepath.Join(*dir, "conf.d"), 0o755); err != nil {
		log.Fatal(err)
	}
	per := *lines / *files
	var main string
	for i := 0; i < *files; i++ {
		var b strings.Builder
		n := 0
		for block := 0; ; block++ {
			var s string
			if *format == "fluentbit" {
				s = fluentBitBlock(i, block)
			} else {
				s = fluentdBlock(i, block)
			}
			if n > 0 && n+strings.Count(s, "\n") > per {
				break
			}
			b.WriteString(s)
			n += strings.Count(s, "\n")
		}
		// Comments fill the file up to its share of lines.
		for ; n < per; n++ {
			b.WriteString("# padding to the benchmark's line count\n")
		}
		name := filepath.Join(*dir, "conf.d", fmt.Sprintf("%03d.conf", i))
		if err := os.WriteFile(name, []byte(b.String()), 0o644); err != nil {
			log.Fatal(err)
		}
	}
	if *format == "fluentbit" {
		main = "[SERVICE]\n    Flush 1\n    HTTP_Server On\n@INCLUDE conf.d/*.conf\n"
	} else {
		main = "<system>\n  log_level info\n</system>\n@include conf.d/*.conf\n"
	}
	name := filepath.Join(*dir, "main.conf")
	if *format == "fluentbit" {
		name = filepath.Join(*dir, "fluent-bit.conf")
	}
	if err := os.WriteFile(name, []byte(main), 0o644); err != nil {
		log.Fatal(err)
	}
}

func fluentdBlock(file, block int) string {
	return fmt.Sprintf(`<source>
  @type tail
  @id tail_%[1]d_%[2]d
  path /var/log/app%[1]d/part%[2]d/*.log
  pos_file /var/log/pos/%[1]d-%[2]d.pos
  tag app%[1]d.part%[2]d.*
  <parse>
    @type json
  </parse>
</source>
<filter app%[1]d.part%[2]d.**>
  @type record_transformer
  <record>
    host "#{ENV['HOSTNAME'] || 'node'}"
    file "%[1]d"   # which file
  </record>
</filter>
<match app%[1]d.part%[2]d.**>
  @type elasticsearch
  @id es_%[1]d_%[2]d
  host "#{ENV['ES_HOST'] || 'elasticsearch'}"
  port 9200
  password secret-%[1]d
  <buffer>
    @type file
    path /var/log/buffer/%[1]d-%[2]d
    chunk_limit_size 8m
    total_limit_size 1g
    retry_max_times 10
  </buffer>
</match>
`, file, block)
}

func fluentBitBlock(file, block int) string {
	return fmt.Sprintf(`[INPUT]
    Name          tail
    Tag           app%[1]d.part%[2]d.*
    Path          /var/log/app%[1]d/part%[2]d/*.log
    DB            /var/log/flb/%[1]d-%[2]d.db
    Mem_Buf_Limit 5MB

[FILTER]
    Name  modify
    Match app%[1]d.part%[2]d.*
    Add   file %[1]d

[OUTPUT]
    Name        es
    Match       app%[1]d.part%[2]d.*
    Host        ${ES_HOST:-elasticsearch}
    HTTP_Passwd secret-%[1]d
    Retry_Limit 5

`, file, block)
}
