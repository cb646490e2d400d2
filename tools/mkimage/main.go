// Command mkimage writes logdoctor's OCI image as a docker-save tarball
// without a Docker daemon (`make image`). Load it with `docker load -i`,
// `podman load -i`, `kind load image-archive` or push it with
// `crane push bin/logdoctor-image.tar REGISTRY/logdoctor:TAG`.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"time"

	"github.com/logdoctor/logdoctor/tools/internal/image"
)

func main() {
	o := image.Options{}
	out := flag.String("out", "bin/logdoctor-image.tar", "tarball to write")
	flag.StringVar(&o.Binary, "binary", "bin/logdoctor", "static logdoctor binary to ship")
	flag.StringVar(&o.Tag, "tag", "logdoctor:dev", "image reference recorded in the tarball")
	flag.StringVar(&o.Arch, "arch", runtime.GOARCH, "image architecture (must match the binary)")
	flag.Parse()
	// SOURCE_DATE_EPOCH keeps the image digest reproducible across builds.
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		sec, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			fmt.Fprintf(os.Stderr, "mkimage: SOURCE_DATE_EPOCH %q: %v\n", s, err)
			os.Exit(2)
		}
		o.Created = time.Unix(sec, 0).UTC()
	}
	if err := image.WriteTarball(*out, o); err != nil {
		fmt.Fprintf(os.Stderr, "mkimage: %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("wrote %s (%s)\n", *out, o.Tag)
}
