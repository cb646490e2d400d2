package pipeline

import (
	"github.com/logdoctor/logdoctor/pkg/essim"
	"github.com/logdoctor/logdoctor/pkg/pipeline/esout"
)

func esConfig(s *essim.Server) esout.Config {
	return esout.Config{URLs: s.URLs()}
}
