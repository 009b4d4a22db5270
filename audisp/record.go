package audisp

import (
	"encoding/hex"
	"strconv"
	"strings"
)

// A record line, as auditd hands it to a plugin with format=string (auditd-plugins(5)) and writes it to
// audit.log (auditd.conf(5) log_format RAW or ENRICHED):
//
//	[node=NAME ]type=TYPE msg=audit(SEC.MSEC:SERIAL): key=value key="quoted" key=48455820 ...[\x1dKEY="interpreted" ...]
//
// Values are bare (numbers, names), double-quoted (no escapes: the kernel quotes only strings without
// special characters), or hex-encoded (untrusted strings with a space, a quote, a control or a non-ASCII
// byte: audit_log_n_untrustedstring in kernel/audit.c). User-space records (USER_*) carry their own fields
// inside msg='...'. With log_format=ENRICHED, a 0x1D byte separates the raw fields from the interpreted
// ones (uids as names, the syscall by name): auditd's "enriched" format, auparse's AUPARSE_... docs.

// enrichedSep separates the raw fields from auditd's interpreted (ENRICHED) fields.
const enrichedSep = 0x1d

// maxLine bounds one record line. The kernel sends at most MAX_AUDIT_MESSAGE_LENGTH (8970) bytes; auditd
// adds the node, type and the enriched part. Longer lines are refused as malformed.
const maxLine = 64 << 10

// EventID names one audit event: every record of an event carries the same msg=audit(SEC.MSEC:SERIAL).
// The serial is unique per boot (a kernel counter); the time disambiguates a wrapped serial.
type EventID struct {
	Sec    int64
	Msec   uint16
	Serial uint64
}

func (id EventID) String() string {
	return strconv.FormatInt(id.Sec, 10) + "." + pad3(id.Msec) + ":" + strconv.FormatUint(id.Serial, 10)
}

func pad3(n uint16) string {
	s := strconv.Itoa(int(n))
	return strings.Repeat("0", max(0, 3-len(s))) + s
}

// Field is one key=value of a record. Value is the raw text without its quotes.
type Field struct {
	Key    string
	Value  string
	Quoted bool
}

// Record is one parsed line.
type Record struct {
	Node     string
	Type     string
	ID       EventID
	Fields   []Field // the raw fields, with the fields of a user-space msg='...' flattened in
	Enriched []Field // the fields after 0x1D (log_format=ENRICHED), or none
}

// Get returns the first field named key.
func (r *Record) Get(key string) (Field, bool) {
	for _, f := range r.Fields {
		if f.Key == key {
			return f, true
		}
	}
	return Field{}, false
}

// GetEnriched returns the interpreted field named key (ENRICHED format only).
func (r *Record) GetEnriched(key string) (Field, bool) {
	for _, f := range r.Enriched {
		if f.Key == key {
			return f, true
		}
	}
	return Field{}, false
}

// Str returns the decoded untrusted string named key: the quoted text, or the hex decoding of a bare
// value; "(null)" and "?" are empty. ok is false when the field is absent or not valid hex.
func (r *Record) Str(key string) (string, bool) {
	f, ok := r.Get(key)
	if !ok {
		return "", false
	}
	return DecodeString(f)
}

// Uint returns the decimal field named key.
func (r *Record) Uint(key string) (uint64, bool) {
	f, ok := r.Get(key)
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseUint(f.Value, 10, 64)
	return v, err == nil
}

// Hex returns the hexadecimal field named key (syscall arguments a0..a3, arch).
func (r *Record) Hex(key string) (uint64, bool) {
	f, ok := r.Get(key)
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseUint(f.Value, 16, 64)
	return v, err == nil
}

// DecodeString decodes an untrusted-string field (kernel/audit.c audit_log_n_untrustedstring): quoted
// text as is, "(null)" and "?" as empty, anything else as hex.
func DecodeString(f Field) (string, bool) {
	if f.Quoted {
		return f.Value, true
	}
	switch f.Value {
	case "(null)", "?", "(none)":
		return "", true
	}
	b, err := hex.DecodeString(f.Value)
	if err != nil {
		return "", false
	}
	return string(b), true
}

// ParseError is a line that is not an audit record. Reason is one of a closed set, used as a counter
// name: the text of the line never appears in it (it may hold a secret).
type ParseError struct {
	Reason string
	Offset int
}

func (e *ParseError) Error() string {
	return "audisp: malformed record (" + e.Reason + " at byte " + strconv.Itoa(e.Offset) + ")"
}

// The reasons of ParseError.
const (
	ReasonEmpty        = "empty"
	ReasonTooLong      = "too_long"
	ReasonNoType       = "no_type"
	ReasonNoMsg        = "no_msg"
	ReasonBadEventID   = "bad_event_id"
	ReasonBadField     = "bad_field"
	ReasonUnterminated = "unterminated_quote"
)

func perr(reason string, off int) error { return &ParseError{Reason: reason, Offset: off} }

// ParseLine parses one record line (without its newline). The Record's strings point into line.
func ParseLine(line string) (Record, error) {
	var r Record
	line = strings.TrimRight(line, "\r\n")
	if len(line) == 0 {
		return r, perr(ReasonEmpty, 0)
	}
	if len(line) > maxLine {
		return r, perr(ReasonTooLong, maxLine)
	}
	pos := 0
	if strings.HasPrefix(line, "node=") {
		end := strings.IndexByte(line, ' ')
		if end < 0 {
			return r, perr(ReasonNoType, len(line))
		}
		r.Node = line[len("node="):end]
		pos = end + 1
	}
	if !strings.HasPrefix(line[pos:], "type=") {
		return r, perr(ReasonNoType, pos)
	}
	pos += len("type=")
	end := strings.IndexByte(line[pos:], ' ')
	if end <= 0 {
		return r, perr(ReasonNoType, pos)
	}
	r.Type = line[pos : pos+end]
	pos += end + 1
	if !strings.HasPrefix(line[pos:], "msg=audit(") {
		return r, perr(ReasonNoMsg, pos)
	}
	pos += len("msg=audit(")
	n, id, ok := parseEventID(line[pos:])
	if !ok {
		return r, perr(ReasonBadEventID, pos)
	}
	r.ID = id
	pos += n
	rest := line[pos:]
	var enriched string
	if i := strings.IndexByte(rest, enrichedSep); i >= 0 {
		rest, enriched = rest[:i], rest[i+1:]
	}
	var err error
	r.Fields = make([]Field, 0, strings.Count(rest, "="))
	if r.Fields, err = parseFields(rest, pos, r.Fields, true); err != nil {
		return r, err
	}
	if enriched != "" {
		r.Enriched = make([]Field, 0, strings.Count(enriched, "="))
		if r.Enriched, err = parseFields(enriched, pos+len(rest)+1, r.Enriched, false); err != nil {
			return r, err
		}
	}
	return r, nil
}

// parseEventID reads "SEC.MSEC:SERIAL):" and returns the bytes consumed.
func parseEventID(s string) (int, EventID, bool) {
	var id EventID
	dot := strings.IndexByte(s, '.')
	colon := strings.IndexByte(s, ':')
	closing := strings.IndexByte(s, ')')
	if dot <= 0 || colon <= dot+1 || closing <= colon+1 || len(s) < closing+2 || s[closing+1] != ':' {
		return 0, id, false
	}
	sec, err1 := strconv.ParseInt(s[:dot], 10, 64)
	msec, err2 := strconv.ParseUint(s[dot+1:colon], 10, 16)
	serial, err3 := strconv.ParseUint(s[colon+1:closing], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || sec < 0 || msec > 999 || !digits(s[:dot]) || !digits(s[colon+1:closing]) {
		return 0, id, false
	}
	id = EventID{Sec: sec, Msec: uint16(msec), Serial: serial}
	return closing + 2, id, true
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// parseFields splits "k=v k="v" k='...'" into fields, appending to out. base is the offset of s in the
// line (for errors). A single-quoted value (a user-space record's msg='...') is itself split into fields
// when nested is true. Words without '=' (as in AVC records: "avc:  denied  { read } for") are skipped.
func parseFields(s string, base int, out []Field, nested bool) ([]Field, error) {
	i := 0
	for i < len(s) {
		for i < len(s) && s[i] == ' ' {
			i++
		}
		if i >= len(s) {
			break
		}
		start := i
		for i < len(s) && s[i] != '=' && s[i] != ' ' {
			i++
		}
		if i >= len(s) || s[i] == ' ' {
			continue // a bare word
		}
		key := s[start:i]
		if key == "" {
			return out, perr(ReasonBadField, base+i)
		}
		i++ // '='
		if i >= len(s) {
			out = append(out, Field{Key: key})
			break
		}
		switch s[i] {
		case '"':
			end := strings.IndexByte(s[i+1:], '"')
			if end < 0 {
				return out, perr(ReasonUnterminated, base+i)
			}
			out = append(out, Field{Key: key, Value: s[i+1 : i+1+end], Quoted: true})
			i += end + 2
		case '\'':
			end := strings.IndexByte(s[i+1:], '\'')
			if end < 0 {
				return out, perr(ReasonUnterminated, base+i)
			}
			inner := s[i+1 : i+1+end]
			if nested {
				var err error
				if out, err = parseFields(inner, base+i+1, out, false); err != nil {
					return out, err
				}
			} else {
				out = append(out, Field{Key: key, Value: inner, Quoted: true})
			}
			i += end + 2
		case '{':
			// ENRICHED SADDR={ saddr_fam=inet laddr=... }
			end := strings.IndexByte(s[i:], '}')
			if end < 0 {
				return out, perr(ReasonUnterminated, base+i)
			}
			out = append(out, Field{Key: key, Value: s[i : i+end+1], Quoted: true})
			i += end + 1
		default:
			end := strings.IndexByte(s[i:], ' ')
			if end < 0 {
				end = len(s) - i
			}
			out = append(out, Field{Key: key, Value: s[i : i+end]})
			i += end
		}
	}
	return out, nil
}
