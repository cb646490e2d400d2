package sockstat

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
)

// formatLine writes s the way the kernel does (tcp4_seq_show /
// tcp6_seq_show), as IPv6 when either end is IPv6.
func formatLine(s Socket) string {
	v6 := !s.Local.Addr().Is4() || !s.Remote.Addr().Is4()
	enc := func(ap netip.AddrPort) string {
		var b []byte
		if v6 {
			a := ap.Addr().As16()
			b = a[:]
		} else {
			a := ap.Addr().As4()
			b = a[:]
		}
		var sb strings.Builder
		for w := 0; w < len(b); w += 4 {
			fmt.Fprintf(&sb, "%02X%02X%02X%02X", b[w+3], b[w+2], b[w+1], b[w])
		}
		return fmt.Sprintf("%s:%04X", sb.String(), ap.Port())
	}
	return fmt.Sprintf("%4d: %s %s %02X %08X:%08X 00:00000000 00000000 %5d        0 %d 1 0000000000000000 100 0 0 10 0",
		0, enc(s.Local), enc(s.Remote), uint8(s.State), s.SendQ, s.RecvQ, s.UID, s.Inode)
}

func TestParseLine(t *testing.T) {
	s, err := ParseLine([]byte("   1: 0100007F:23F0 0500007F:9C4A 08 0000012C:00000010 00:00000000 00000000  1000        0 4242 1 0000000000000000 100 0 0 10 0"))
	if err != nil {
		t.Fatal(err)
	}
	want := Socket{Local: netip.MustParseAddrPort("127.0.0.1:9200"), Remote: netip.MustParseAddrPort("127.0.0.5:40010"),
		State: CloseWait, SendQ: 300, RecvQ: 16, Inode: 4242, UID: 1000}
	if s != want {
		t.Fatalf("got %+v", s)
	}
	if got, err := ParseLine([]byte(formatLine(want))); err != nil || got != want {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	// TIME_WAIT lines are shorter; still at least 10 fields.
	if _, err := ParseLine([]byte("  12: 0100007F:A2C6 0100007F:23F0 06 00000000:00000000 03:000016F2 00000000     0        0 0 3 0000000000000000")); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{
		"",
		"garbage",
		"   1: 0100007F:23F0 0500007F 08 0:0 00:0 0 0 0 1",
		"   1: 0100007F:23F0 00000000000000000000000001000000:0001 01 0:0 00:0 0 0 0 1",
		"   1: 0100007F:23F0 0500007F:1 FF 0:0 00:0 0 0 0 1",
		"   1: 0100007F:23F0 0500007F:1 01 0:0 00:0 0 99999999999 0 1",
		"   1: 0100007F:123456 0500007F:1 01 0:0 00:0 0 0 0 1",
		"   1: 0100007F:1 0500007F:1 01 0:0 00:0 0 0 0 -1",
		"   1 0100007F:1 0500007F:1 01 0:0 00:0 0 0 0 1",
	} {
		if _, err := ParseLine([]byte(bad)); err == nil {
			t.Errorf("%q: want an error", bad)
		}
	}
}

func TestParseTableCapsLongLines(t *testing.T) {
	in := "header local_address\n" + formatLine(Socket{State: Listen, Local: netip.MustParseAddrPort("127.0.0.1:1"), Remote: netip.MustParseAddrPort("0.0.0.0:0")}) +
		"\n" + strings.Repeat("x", maxLineLen+10) + "\n"
	tb, err := ParseTable(strings.NewReader(in))
	if err != nil || len(tb.Sockets) != 1 || tb.MalformedCount != 1 || tb.Malformed[0].Line != 3 {
		t.Fatalf("%+v %v", tb, err)
	}
	// Many bad lines: all counted, only the first few kept.
	tb, _ = ParseTable(strings.NewReader(strings.Repeat("bad\n", 100)))
	if tb.MalformedCount != 100 || len(tb.Malformed) != maxMalformedKept || tb.Malformed[0].Line != 1 {
		t.Fatalf("%d %d", tb.MalformedCount, len(tb.Malformed))
	}
}

// FuzzParseLine: the parser never panics, and whatever it accepts it
// reads back identically from the kernel's own formatting of it.
func FuzzParseLine(f *testing.F) {
	for _, s := range []string{
		"   0: 00000000:07E8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 129 1 000000005d1f3e39 100 0 0 10 0",
		"   1: 020200C0:B88E 507100CB:01BB 06 00000000:00000000 03:0000100A 00000000     0        0 0 3 00000000d76cf7cc",
		"   4: 0000000000000000FFFF00000100007F:23F0 0000000000000000FFFF00000500007F:9C4A 01 00000000:00000000 00:00000000 00000000  1000        0 6004 1 0000000000000000 100 0 0 10 0",
		"   1: 0900007F:9C41 0100007G:5EA0 01 00000000:00000000 00:00000000 00000000  1000        0 7002 1",
		"\t1:\t0100007F:1\t0100007F:2\t01\t1:2\t0:0\t0\t4294967295\t0\t18446744073709551615",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		s, err := ParseLine(line)
		if err != nil {
			if len(err.Error()) > 400 {
				t.Fatalf("error message not bounded: %d bytes", len(err.Error()))
			}
			return
		}
		if !s.State.Valid() {
			t.Fatalf("accepted invalid state %d", s.State)
		}
		again, err := ParseLine([]byte(formatLine(s)))
		if err != nil || again != s {
			t.Fatalf("round trip of %q: %+v -> %q -> %+v %v", line, s, formatLine(s), again, err)
		}
	})
}

// FuzzParseTable: a whole file never panics, every line is either a socket
// or a counted malformed line, and kept malformed lines stay capped.
func FuzzParseTable(f *testing.F) {
	for _, p := range []string{"testdata/v6/net/tcp6", "testdata/malformed/net/tcp", "testdata/no-tcp6/net/tcp"} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("\n\n\x00:\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		tb, err := ParseTable(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		lines := bytes.Count(data, []byte("\n")) + 1
		if len(tb.Sockets)+tb.MalformedCount > lines || len(tb.Malformed) > maxMalformedKept {
			t.Fatalf("%d sockets + %d malformed from %d lines", len(tb.Sockets), tb.MalformedCount, lines)
		}
		for _, m := range tb.Malformed {
			if m.Line < 1 || m.Line > lines || len(m.Error) > 400 {
				t.Fatalf("malformed %+v", m)
			}
		}
	})
}
