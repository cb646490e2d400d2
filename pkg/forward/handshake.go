package forward

import (
	"crypto/rand"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/hex"
	"fmt"

	"github.com/vmihailenco/msgpack/v5"
)

// Helo is the server's greeting when it requires authentication.
type Helo struct {
	Nonce     []byte
	Auth      []byte // salt for username/password auth; empty when not required
	Keepalive bool
}

// Ping is the client's answer to HELO.
type Ping struct {
	Hostname        string
	SharedKeySalt   []byte
	SharedKeyDigest string // hex(sha512(salt + hostname + nonce + shared_key))
	Username        string
	PasswordDigest  string // hex(sha512(auth_salt + username + password)), "" without user auth
}

// Pong is the server's verdict.
type Pong struct {
	OK              bool
	Reason          string
	Hostname        string
	SharedKeyDigest string // hex(sha512(ping salt + server hostname + nonce + shared_key))
}

// SharedKeyDigest is the hex SHA-512 of salt, hostname, nonce and key.
func SharedKeyDigest(salt []byte, hostname string, nonce []byte, key string) string {
	h := sha512.New()
	h.Write(salt)
	h.Write([]byte(hostname))
	h.Write(nonce)
	h.Write([]byte(key))
	return hex.EncodeToString(h.Sum(nil))
}

// PasswordDigest is the hex SHA-512 of auth salt, username and password.
func PasswordDigest(authSalt []byte, username, password string) string {
	h := sha512.New()
	h.Write(authSalt)
	h.Write([]byte(username))
	h.Write([]byte(password))
	return hex.EncodeToString(h.Sum(nil))
}

func digestEqual(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

// AppendHelo encodes ["HELO", {"nonce", "auth", "keepalive"}].
func AppendHelo(dst []byte, h Helo) []byte {
	b, _ := msgpack.Marshal([]any{"HELO", map[string]any{"nonce": h.Nonce, "auth": h.Auth, "keepalive": h.Keepalive}})
	return append(dst, b...)
}

// AppendPing encodes ["PING", hostname, salt, digest, username, password_digest].
// The salt travels as a msgpack string, as Fluentd's out_forward sends it:
// Fluent Bit's in_forward rejects a bin salt ("Invalid shared_key_salt type").
func AppendPing(dst []byte, p Ping) []byte {
	b, _ := msgpack.Marshal([]any{"PING", p.Hostname, string(p.SharedKeySalt), p.SharedKeyDigest, p.Username, p.PasswordDigest})
	return append(dst, b...)
}

// AppendPong encodes ["PONG", ok, reason, hostname, digest].
func AppendPong(dst []byte, p Pong) []byte {
	b, _ := msgpack.Marshal([]any{"PONG", p.OK, p.Reason, p.Hostname, p.SharedKeyDigest})
	return append(dst, b...)
}

// handshakeMessage decodes a frame into its array, checking the message
// type and element count. Strings may arrive as str or bin (Ruby sends
// binary strings as either), so callers use asString/asBytes.
func handshakeMessage(frame []byte, typ string, min int) ([]any, error) {
	// Check the structure within tight limits before vmihailenco/msgpack
	// sees it: it would allocate whatever lengths the frame declares.
	sc := scanner{lim: handshakeLimits}
	if n, err := sc.skipValue(frame); err != nil {
		return nil, fmt.Errorf("%s: %w", typ, err)
	} else if n != len(frame) {
		return nil, fmt.Errorf("%w: %s: %d trailing bytes", ErrMalformed, typ, len(frame)-n)
	}
	var v []any
	if err := msgpack.Unmarshal(frame, &v); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrMalformed, typ, err)
	}
	if len(v) < 1 || asString(v[0]) != typ {
		return nil, fmt.Errorf("%w: expected %s message", ErrMalformed, typ)
	}
	if len(v) < min {
		return nil, fmt.Errorf("%w: %s message has %d elements, want %d", ErrMalformed, typ, len(v), min)
	}
	return v, nil
}

func asString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case []byte:
		return string(x)
	}
	return ""
}

func asBytes(v any) []byte {
	switch x := v.(type) {
	case string:
		return []byte(x)
	case []byte:
		return x
	}
	return nil
}

// handshakeLimits bound HELO, PING and PONG, which are a few short strings.
var handshakeLimits = Limits{MaxArrayLen: 16, MaxMapLen: 16, MaxStrLen: 4096, MaxBinLen: 4096, MaxDepth: 4,
	MaxRequestBytes: 64 << 10, MaxDecompressedBytes: 1}

// ParseHelo decodes a HELO frame.
func ParseHelo(frame []byte) (Helo, error) {
	v, err := handshakeMessage(frame, "HELO", 2)
	if err != nil {
		return Helo{}, err
	}
	opts, ok := v[1].(map[string]any)
	if !ok {
		return Helo{}, fmt.Errorf("%w: HELO options are not a map", ErrMalformed)
	}
	h := Helo{Nonce: asBytes(opts["nonce"]), Auth: asBytes(opts["auth"])}
	h.Keepalive, _ = opts["keepalive"].(bool)
	if len(h.Nonce) == 0 {
		return Helo{}, fmt.Errorf("%w: HELO without nonce", ErrMalformed)
	}
	return h, nil
}

// ParsePing decodes a PING frame.
func ParsePing(frame []byte) (Ping, error) {
	v, err := handshakeMessage(frame, "PING", 4)
	if err != nil {
		return Ping{}, err
	}
	p := Ping{Hostname: asString(v[1]), SharedKeySalt: asBytes(v[2]), SharedKeyDigest: asString(v[3])}
	if len(v) >= 6 {
		p.Username, p.PasswordDigest = asString(v[4]), asString(v[5])
	}
	return p, nil
}

// ParsePong decodes a PONG frame.
func ParsePong(frame []byte) (Pong, error) {
	v, err := handshakeMessage(frame, "PONG", 3)
	if err != nil {
		return Pong{}, err
	}
	ok, isBool := v[1].(bool)
	if !isBool {
		return Pong{}, fmt.Errorf("%w: PONG auth result is not a boolean", ErrMalformed)
	}
	p := Pong{OK: ok, Reason: asString(v[2])}
	if len(v) >= 5 {
		p.Hostname, p.SharedKeyDigest = asString(v[3]), asString(v[4])
	}
	return p, nil
}

// serverAuth holds what the server side needs to check a PING.
type serverAuth struct {
	sharedKey string
	users     map[string]string
	hostname  string
	nonce     []byte
	authSalt  []byte
}

// verify checks a PING and builds the PONG (Fluentd's reasons verbatim).
func (a *serverAuth) verify(p Ping) Pong {
	fail := func(reason string) Pong { return Pong{OK: false, Reason: reason, Hostname: a.hostname} }
	if p.Hostname == a.hostname {
		return fail("same hostname between input and output: invalid configuration")
	}
	if !digestEqual(p.SharedKeyDigest, SharedKeyDigest(p.SharedKeySalt, p.Hostname, a.nonce, a.sharedKey)) {
		return fail("shared_key mismatch")
	}
	if len(a.users) > 0 {
		pw, ok := a.users[p.Username]
		if !ok || !digestEqual(p.PasswordDigest, PasswordDigest(a.authSalt, p.Username, pw)) {
			return fail("username/password mismatch")
		}
	}
	return Pong{OK: true, Hostname: a.hostname, SharedKeyDigest: SharedKeyDigest(p.SharedKeySalt, a.hostname, a.nonce, a.sharedKey)}
}
