package tacplus_test

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/tacagent/tacagent/tacplus"
)

// enumCase is one wire enum with the values RFC 8907 defines for it, so that Valid is checked against the
// RFC's own lists rather than against the name tables.
type enumCase struct {
	name, section string
	str           func(uint8) string
	valid         func(uint8) bool // nil when the type has no Valid method
	defined       []uint8
	unnamed       []uint8 // defined values that print with their number
	bitset        bool    // prints flag names joined by '|': checked separately below
}

var enums = []enumCase{
	{name: "PacketType", section: "4.1", str: func(v uint8) string { return tacplus.PacketType(v).String() },
		valid: func(v uint8) bool { return tacplus.PacketType(v).Valid() }, defined: []uint8{1, 2, 3}},
	{name: "HeaderFlag", section: "4.1", str: func(v uint8) string { return tacplus.HeaderFlag(v).String() },
		defined: []uint8{0, 1, 4, 5}, bitset: true},
	{name: "AuthenAction", section: "5.1", str: func(v uint8) string { return tacplus.AuthenAction(v).String() },
		valid: func(v uint8) bool { return tacplus.AuthenAction(v).Valid() }, defined: []uint8{1, 2, 4}},
	{name: "AuthenType", section: "5.1, 6.1", str: func(v uint8) string { return tacplus.AuthenType(v).String() },
		defined: []uint8{0, 1, 2, 3, 4, 5, 6}},
	{name: "AuthenService", section: "5.1", str: func(v uint8) string { return tacplus.AuthenService(v).String() },
		valid: func(v uint8) bool { return tacplus.AuthenService(v).Valid() }, defined: []uint8{0, 1, 2, 3, 5, 6, 7, 8, 9}},
	{name: "AuthenMethod", section: "6.1", str: func(v uint8) string { return tacplus.AuthenMethod(v).String() },
		valid: func(v uint8) bool { return tacplus.AuthenMethod(v).Valid() }, defined: []uint8{0, 1, 2, 3, 4, 5, 6, 8, 0x10, 0x11, 0x20}},
	{name: "AuthenStatus", section: "5.2", str: func(v uint8) string { return tacplus.AuthenStatus(v).String() },
		valid: func(v uint8) bool { return tacplus.AuthenStatus(v).Valid() }, defined: []uint8{1, 2, 3, 4, 5, 6, 7, 0x21}},
	{name: "AuthenReplyFlag", section: "5.2", str: func(v uint8) string { return tacplus.AuthenReplyFlag(v).String() },
		defined: []uint8{0, 1}},
	{name: "AuthenContinueFlag", section: "5.3", str: func(v uint8) string { return tacplus.AuthenContinueFlag(v).String() },
		defined: []uint8{0, 1}},
	{name: "AuthorStatus", section: "6.2", str: func(v uint8) string { return tacplus.AuthorStatus(v).String() },
		valid: func(v uint8) bool { return tacplus.AuthorStatus(v).Valid() }, defined: []uint8{1, 2, 0x10, 0x11, 0x21}},
	// Section 7.2's table, read through "Flags & 0xE": START, STOP, WATCHDOG, WATCHDOG|START, each with or
	// without the deprecated MORE bit. Only the four rows without MORE have names.
	{name: "AcctFlag", section: "7.1, 7.2", str: func(v uint8) string { return tacplus.AcctFlag(v).String() },
		valid: func(v uint8) bool { return tacplus.AcctFlag(v).Valid() }, defined: []uint8{2, 3, 4, 5, 8, 9, 0xa, 0xb},
		unnamed: []uint8{3, 5, 9, 0xb}},
	{name: "AcctStatus", section: "7.2", str: func(v uint8) string { return tacplus.AcctStatus(v).String() },
		valid: func(v uint8) bool { return tacplus.AcctStatus(v).Valid() }, defined: []uint8{1, 2, 0x21}},
	{name: "Role", section: "-", str: func(v uint8) string { return tacplus.Role(v).String() }, defined: []uint8{1, 2}},
	{name: "Reason", section: "-", str: func(v uint8) string { return tacplus.Reason(v).String() },
		defined: []uint8{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}},
}

// TestEnumStrings: String never panics on any of the 256 values, names every defined value distinctly,
// and prints every other value with its number so that nothing is hidden in a log line.
func TestEnumStrings(t *testing.T) {
	for _, e := range enums {
		t.Run(e.name, func(t *testing.T) {
			defined := map[uint8]bool{}
			for _, v := range e.defined {
				defined[v] = true
			}
			names := map[string]uint8{}
			for i := 0; i < 256; i++ {
				v := uint8(i)
				s := e.str(v) // must not panic
				if s == "" {
					t.Fatalf("value 0x%x prints as empty", v)
				}
				if prev, dup := names[s]; dup {
					t.Fatalf("0x%x and 0x%x both print %q", prev, v, s)
				}
				names[s] = v
				if e.valid != nil && e.valid(v) != defined[v] {
					t.Errorf("section %s: Valid(0x%x) = %v, RFC says %v", e.section, v, e.valid(v), defined[v])
				}
				numbered := strings.Contains(s, "0x"+strconv.FormatUint(uint64(v), 16)) || strings.Contains(s, "("+strconv.Itoa(i)+")")
				switch {
				case e.bitset:
				case defined[v] && !slices.Contains(e.unnamed, v):
					if strings.Contains(s, "(") {
						t.Errorf("defined value 0x%x prints %q", v, s)
					}
				case !numbered:
					t.Errorf("value 0x%x prints %q without its number", v, s)
				}
			}
		})
	}
	// Header flags are a bit set: unknown bits are shown, known ones named (section 4.1).
	if got := tacplus.HeaderFlag(0xff).String(); got != "UNENCRYPTED|SINGLE_CONNECT|flags(0xfa)" {
		t.Errorf("HeaderFlag(0xff) = %q", got)
	}
	h := tacplus.Header{Version: 0xc1, Type: 9, SeqNo: 3, Flags: 1, SessionID: 0xabc, Length: 7}
	if got := h.String(); got != "type(0x9) v12.1 seq=3 flags=UNENCRYPTED session=0x00000abc len=7" {
		t.Errorf("Header.String() = %q", got)
	}
	if got := fmt.Sprint(tacplus.AcctFlagWatchdog | tacplus.AcctFlagStart); got != "WATCHDOG_UPDATE" {
		t.Errorf("AcctFlag 0x0a = %q", got)
	}
}

// TestStartMinorVersion is table 1 of section 5.4.1, cell by cell.
func TestStartMinorVersion(t *testing.T) {
	const x = 0xff                            // "-": not valid
	table := map[tacplus.AuthenType][3]uint8{ //  LOGIN CHPASS SENDAUTH
		tacplus.AuthenTypeASCII:    {0, 0, x},
		tacplus.AuthenTypePAP:      {1, x, 1},
		tacplus.AuthenTypeCHAP:     {1, x, 1},
		tacplus.AuthenTypeMSCHAP:   {1, x, 1},
		tacplus.AuthenTypeMSCHAPv2: {1, x, 1},
	}
	actions := [3]tacplus.AuthenAction{tacplus.ActionLogin, tacplus.ActionChPass, tacplus.ActionSendAuth}
	for ty := 0; ty < 256; ty++ {
		for a := 0; a < 256; a++ {
			want := uint8(x)
			if row, ok := table[tacplus.AuthenType(ty)]; ok {
				for i, act := range actions {
					if tacplus.AuthenAction(a) == act {
						want = row[i]
					}
				}
			}
			m, ok := tacplus.StartMinorVersion(tacplus.AuthenAction(a), tacplus.AuthenType(ty))
			if got := map[bool]uint8{true: m, false: x}[ok]; got != want {
				t.Fatalf("StartMinorVersion(%s, %s) = %d %v, table says %d", tacplus.AuthenAction(a), tacplus.AuthenType(ty), m, ok, want)
			}
		}
	}
}
