package pipeline

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"time"

	"github.com/logdoctor/logdoctor/internal/jsonenc"
	"github.com/logdoctor/logdoctor/pkg/forward"
)

// eventID is the deterministic _id of an event: the first 128 bits of
// SHA-256 over tag, time and the raw record bytes, base64url. The same
// event resent by a shipper after a lost ack, or replayed from the buffer
// after a crash, gets the same id, so `create` answers 409 instead of
// indexing a second copy. Two events identical in tag, time (to the
// nanosecond the sender provides) and every byte of the record are one
// event to the pipeline; use --id-key when that is not what you want.
func eventID(tag string, sec int64, nsec uint32, raw []byte) string {
	var x idHasher
	return string(x.appendID(nil, tag, sec, nsec, raw))
}

// idHasher computes eventIDs with one scratch buffer: the hashed bytes are
// laid out contiguously and hashed by sha256.Sum256, which keeps the digest
// on the stack (no hash.Hash, no Reset/Sum copies per event).
type idHasher struct {
	scratch []byte
}

// idLen is the length of an eventID: 16 bytes, base64url without padding.
const idLen = 22

// appendID appends the eventID of one event to dst. Callers building the
// ids of a whole request append them into one buffer and make it a single
// string, one allocation per request instead of one per event.
func (x *idHasher) appendID(dst []byte, tag string, sec int64, nsec uint32, raw []byte) []byte {
	b := x.scratch[:0]
	b = binary.BigEndian.AppendUint16(b, uint16(len(tag)))
	b = append(b, tag...)
	b = binary.BigEndian.AppendUint64(b, uint64(sec))
	b = binary.BigEndian.AppendUint32(b, nsec)
	b = append(b, raw...)
	sum := sha256.Sum256(b)
	if cap(b) <= maxPooledScratch {
		x.scratch = b
	}
	return base64.RawURLEncoding.AppendEncode(dst, sum[:16])
}

// maxPooledScratch: an idHasher does not keep a scratch buffer grown by
// one huge record.
const maxPooledScratch = 64 << 10

var errNotObject = errors.New("not a JSON object")

// topLevel calls fn for every key of a JSON object with the raw bytes of
// its value; fn returns false to stop. obj must be valid JSON.
func topLevel(obj []byte, fn func(key, val []byte) bool) error {
	i := skipWS(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return errNotObject
	}
	i++
	for {
		i = skipWS(obj, i)
		if i >= len(obj) || obj[i] == '}' {
			return nil
		}
		if obj[i] == ',' {
			i++
			continue
		}
		if obj[i] != '"' {
			return errNotObject
		}
		ke := skipString(obj, i)
		key := obj[i:ke]
		i = skipWS(obj, ke)
		if i >= len(obj) || obj[i] != ':' {
			return errNotObject
		}
		i = skipWS(obj, i+1)
		ve := skipValue(obj, i)
		if !fn(key, obj[i:ve]) {
			return nil
		}
		i = ve
	}
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the string starting at b[i] == '"'.
func skipString(b []byte, i int) int {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return len(b)
}

// skipValue returns the index after the value starting at b[i].
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return i
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				j = skipString(b, j) - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return len(b)
	default:
		j := i
		for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ' ' && b[j] != '\n' && b[j] != '\t' && b[j] != '\r' {
			j++
		}
		return j
	}
}

// docBuilder turns a record's JSON into the indexed document: the record's
// fields plus the event time (timeKey, RFC 3339 with nanoseconds, UTC) and
// the tag (tagKey), each added only when the record does not already have
// that key (Elasticsearch rejects duplicate keys).
type docBuilder struct {
	timeKey, tagKey, idKey string
}

// build returns the document and, when idKey is set and the record has
// it, the id taken from it.
func (d *docBuilder) build(dst, obj []byte, tag string, t time.Time) ([]byte, string, error) {
	haveTime, haveTag := d.timeKey == "", d.tagKey == ""
	var id string
	err := topLevel(obj, func(k, v []byte) bool {
		if !haveTime && keyIs(k, d.timeKey) {
			haveTime = true
		}
		if !haveTag && keyIs(k, d.tagKey) {
			haveTag = true
		}
		if d.idKey != "" && keyIs(k, d.idKey) {
			id = idFromValue(v)
		}
		return true
	})
	if err != nil {
		return dst, "", err
	}
	return d.appendDoc(dst, obj, haveTime, haveTag, tag, t), id, nil
}

// buildKeys is build without the idKey, for a record's JSON whose
// top-level keys forward.RecordToJSONKeys already reported: the record is
// not scanned again.
func (d *docBuilder) buildKeys(dst, obj []byte, keys []forward.KeySpan, tag string, t time.Time) []byte {
	haveTime, haveTag := d.timeKey == "", d.tagKey == ""
	for _, k := range keys {
		key := obj[k.Key : k.Val-1] // without the colon
		haveTime = haveTime || keyIs(key, d.timeKey)
		haveTag = haveTag || keyIs(key, d.tagKey)
	}
	return d.appendDoc(dst, obj, haveTime, haveTag, tag, t)
}

// appendDoc appends the document: obj, a JSON object, with the event time
// and the tag first when it does not have them.
func (d *docBuilder) appendDoc(dst, obj []byte, haveTime, haveTag bool, tag string, t time.Time) []byte {
	i := skipWS(obj, 0) + 1 // after '{'
	dst = append(dst, '{')
	added := false
	if !haveTime {
		dst = jsonenc.AppendString(dst, d.timeKey)
		dst = append(dst, ':', '"')
		dst = appendTimestamp(dst, t)
		dst = append(dst, '"')
		added = true
	}
	if !haveTag {
		if added {
			dst = append(dst, ',')
		}
		dst = jsonenc.AppendString(dst, d.tagKey)
		dst = append(dst, ':')
		dst = jsonenc.AppendString(dst, tag)
		added = true
	}
	rest := obj[i:]
	if added && skipWS(rest, 0) < len(rest) && rest[skipWS(rest, 0)] != '}' {
		dst = append(dst, ',')
	}
	return append(dst, rest...)
}

// timestampLayout is the event time in documents: RFC 3339, UTC, always
// nine fraction digits (Elasticsearch's date_nanos and strict_date_optional_time
// both read it).
const timestampLayout = "2006-01-02T15:04:05.000000000Z"

// appendTimestamp appends t in timestampLayout. Formatting is per
// document at delivery, and time.AppendFormat walks the layout and
// splits the date apart on every call (4% of the pipeline's CPU at 300k
// documents/s); this computes the civil date from the Unix time (Howard
// Hinnant's days_from_civil inverse) and writes fixed-width digits, for
// years 0 to 9999, leaving any other time to AppendFormat.
func appendTimestamp(dst []byte, t time.Time) []byte {
	const (
		minSec = -62167219200 // 0000-01-01T00:00:00Z
		maxSec = 253402300799 // 9999-12-31T23:59:59Z
	)
	secs := t.Unix()
	if secs < minSec || secs > maxSec {
		return t.UTC().AppendFormat(dst, timestampLayout)
	}
	days := (secs - minSec) / 86400 // days since 0000-01-01, >= 0
	rem := int((secs - minSec) % 86400)
	// Civil date from days since 0000-03-01 (era of 400 years).
	z := days - 60 // 0000-01-01 .. 0000-02-29 are 60 days (year 0 is leap)
	era := z
	if era < 0 {
		era -= 146096
	}
	era /= 146097
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	day := int(doy - (153*mp+2)/5 + 1)
	month := int(mp + 3)
	if month > 12 {
		month -= 12
	}
	year := int(yoe + era*400)
	if month <= 2 {
		year++
	}
	var b [len(timestampLayout)]byte
	put4(b[0:4], year)
	b[4] = '-'
	put2(b[5:7], month)
	b[7] = '-'
	put2(b[8:10], day)
	b[10] = 'T'
	put2(b[11:13], rem/3600)
	b[13] = ':'
	put2(b[14:16], rem/60%60)
	b[16] = ':'
	put2(b[17:19], rem%60)
	b[19] = '.'
	ns := t.Nanosecond()
	for i := 28; i >= 20; i-- {
		b[i] = byte('0' + ns%10)
		ns /= 10
	}
	b[29] = 'Z'
	return append(dst, b[:]...)
}

func put2(b []byte, v int) { b[0], b[1] = byte('0'+v/10), byte('0'+v%10) }

func put4(b []byte, v int) { put2(b[0:2], v/100); put2(b[2:4], v%100) }

// keyIs reports whether the quoted JSON key k is want, without allocating
// for keys that have no escapes (nearly all of them).
func keyIs(k []byte, want string) bool {
	if len(k) >= 2 && k[0] == '"' && k[len(k)-1] == '"' && bytes.IndexByte(k, '\\') < 0 {
		return string(k[1:len(k)-1]) == want
	}
	return unquoteKey(k) == want
}

func unquoteKey(k []byte) string {
	if len(k) >= 2 && k[0] == '"' && k[len(k)-1] == '"' {
		inner := k[1 : len(k)-1]
		for _, c := range inner {
			if c == '\\' {
				var s string
				if json.Unmarshal(k, &s) == nil {
					return s
				}
				break
			}
		}
		return string(inner)
	}
	return string(k)
}

// idFromValue turns an --id-key value into an _id: a string as is, any
// other JSON value as its text. Ids longer than Elasticsearch's 512-byte
// limit or the buffer's 255 are hashed.
func idFromValue(v []byte) string {
	s := string(v)
	if len(v) > 0 && v[0] == '"' {
		var u string
		if json.Unmarshal(v, &u) == nil {
			s = u
		}
	}
	if s == "" || s == "null" {
		return ""
	}
	if len(s) > 255 {
		sum := sha256.Sum256([]byte(s))
		return base64.RawURLEncoding.EncodeToString(sum[:16])
	}
	return s
}
