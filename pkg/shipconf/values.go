package shipconf

import (
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Values are strings in the model; these read them the way each shipper
// does, quirks included, so a rule sees the number the shipper uses.

var (
	fdSizeK = regexp.MustCompile(`(?i)([0-9]+)k`)
	fdSizeM = regexp.MustCompile(`(?i)([0-9]+)m`)
	fdSizeG = regexp.MustCompile(`(?i)([0-9]+)g`)
	fdSizeT = regexp.MustCompile(`(?i)([0-9]+)t`)
	fdTimeS = regexp.MustCompile(`([0-9]+)s`)
	fdTimeM = regexp.MustCompile(`([0-9]+)m`)
	fdTimeH = regexp.MustCompile(`([0-9]+)h`)
	fdTimeD = regexp.MustCompile(`([0-9]+)d`)
	leadNum = regexp.MustCompile(`^\s*[-+]?[0-9]+`)
	leadFlt = regexp.MustCompile(`^\s*[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?`)
)

// FluentdSize is Fluent::Config.size_value (lib/fluent/config/types.rb):
// the first of k, m, g, t (1024-based, any case) found after digits
// anywhere in the text wins, else the leading integer (Ruby's to_i).
func FluentdSize(s string) (int64, bool) {
	for i, re := range []*regexp.Regexp{fdSizeK, fdSizeM, fdSizeG, fdSizeT} {
		if m := re.FindStringSubmatch(s); m != nil {
			n, err := strconv.ParseInt(m[1], 10, 64)
			if err != nil {
				return 0, false
			}
			mul := int64(1) << (10 * (i + 1))
			if n > math.MaxInt64/mul {
				return 0, false
			}
			return n * mul, true
		}
	}
	return rubyToI(s)
}

// FluentdTime is Fluent::Config.time_value: s, m, h, d suffixes (lowercase
// only) after digits, else the text as a float of seconds.
func FluentdTime(s string) (time.Duration, bool) {
	for _, u := range []struct {
		re  *regexp.Regexp
		mul time.Duration
	}{{fdTimeS, time.Second}, {fdTimeM, time.Minute}, {fdTimeH, time.Hour}, {fdTimeD, 24 * time.Hour}} {
		if m := u.re.FindStringSubmatch(s); m != nil {
			n, err := strconv.ParseInt(m[1], 10, 64)
			if err != nil || n > int64(math.MaxInt64/u.mul) {
				return 0, false
			}
			return time.Duration(n) * u.mul, true
		}
	}
	m := leadFlt.FindString(s)
	if m == "" {
		return 0, true // Ruby's "abc".to_f is 0.0
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(m), 64)
	if err != nil || f > math.MaxInt64/float64(time.Second) {
		return 0, false
	}
	return time.Duration(f * float64(time.Second)), true
}

// FluentdBool is Fluent::Config.bool_value: true, yes and the empty value
// (a key written without a value) are true; false and no are false; a
// value starting with '#' (a comment the parser took as the value) is
// true; anything else is nil, which Fluentd treats as false.
func FluentdBool(s string) (val, valid bool) {
	switch s {
	case "true", "yes", "":
		return true, true
	case "false", "no":
		return false, true
	}
	if strings.HasPrefix(s, "#") {
		return true, true
	}
	return false, false
}

// FluentdInt is Ruby's to_i, which config_param :integer uses when not
// strict.
func FluentdInt(s string) (int64, bool) { return rubyToI(s) }

func rubyToI(s string) (int64, bool) {
	m := leadNum.FindString(strings.ReplaceAll(s, "_", ""))
	if m == "" {
		return 0, true
	}
	n, err := strconv.ParseInt(strings.TrimSpace(m), 10, 64)
	if err != nil {
		return 0, false
	}
	return n, true
}

// FluentdArray is Fluent::Config.array_value: a JSON array, or a comma
// separated list.
func FluentdArray(s string) []string {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "[") {
		return jsonStrings(s)
	}
	if s == "" {
		return nil
	}
	parts := strings.Split(s, ",")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	return parts
}

// FluentBitBool is flb_utils_bool (src/flb_utils.c): true/on/yes and
// false/off/no, any case; anything else is invalid (-1).
func FluentBitBool(s string) (val, valid bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true", "on", "yes":
		return true, true
	case "false", "off", "no":
		return false, true
	}
	return false, false
}

// FluentBitSize is flb_utils_size_to_bytes: K, M, G (with an optional B),
// 1000-based; "false" is 0.
func FluentBitSize(s string) (int64, bool) {
	s = strings.TrimSpace(s)
	if strings.EqualFold(s, "false") {
		return 0, true
	}
	if s == "" {
		return 0, false
	}
	plen := 0
	for i := len(s) - 1; i > 0; i-- {
		if s[i] >= '0' && s[i] <= '9' {
			break
		}
		plen++
	}
	numPart := leadFlt.FindString(s)
	val := 0.0
	if numPart != "" {
		val, _ = strconv.ParseFloat(strings.TrimSpace(numPart), 64)
	}
	if plen == 0 {
		return int64(val), true
	}
	if plen > 2 {
		return 0, false
	}
	suf := strings.ToUpper(s[len(s)-plen:])
	if plen == 2 && suf[1] != 'B' {
		return 0, false
	}
	var mul float64
	switch suf[0] {
	case 'K':
		mul = 1e3
	case 'M':
		mul = 1e6
	case 'G':
		mul = 1e9
	default:
		return 0, false
	}
	if val*mul > math.MaxInt64 || val*mul < math.MinInt64 {
		return 0, false
	}
	return int64(val * mul), true
}

// RetryLimit is how a Fluent Bit output's Retry_Limit reads
// (flb_output_set_property in src/flb_output.c).
type RetryLimit struct {
	Unlimited bool // no_limits, false, off
	None      bool // no_retries: a failed chunk is dropped at once
	Count     int  // retries otherwise; 0 and negative numbers mean 1
}

// FluentBitRetryLimit reads Retry_Limit.
func FluentBitRetryLimit(s string) RetryLimit {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "no_limits", "false", "off":
		return RetryLimit{Unlimited: true}
	case "no_retries":
		return RetryLimit{None: true}
	}
	n, _ := rubyToI(s) // atoi
	if n <= 0 {
		n = 1
	}
	if n > math.MaxInt32 {
		n = math.MaxInt32
	}
	return RetryLimit{Count: int(n)}
}

// FluentBitAtoi is C atoi.
func FluentBitAtoi(s string) int64 {
	n, _ := rubyToI(strings.ReplaceAll(s, "_", "x"))
	return n
}
