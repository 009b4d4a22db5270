package localapi

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/tacagent/tacagent/tacplus"
)

// maxField is the longest user, port, rem_addr or argument: each travels with a one-byte length (RFC 8907
// sections 5.1, 6.1, 7.1); maxArgs likewise bounds arg_cnt.
const (
	maxField = 255
	maxArgs  = 255
	maxPriv  = 15 // priv_lvl is 0-15 (section 5.1)
)

// checkText refuses what no server could be sent: too long, not UTF-8, or control characters (section
// 3.7). The message names the field, never its value.
func checkText(field, v string, spaceOK bool) *apiError {
	if len(v) > maxField {
		return badRequest(fmt.Sprintf("%s is longer than %d bytes", field, maxField))
	}
	if !utf8.ValidString(v) {
		return badRequest(field + " is not UTF-8")
	}
	for _, c := range v {
		if unicode.IsControl(c) || (!spaceOK && unicode.IsSpace(c)) {
			return badRequest(field + " holds a control character or a space")
		}
	}
	return nil
}

func checkPriv(p int) *apiError {
	if p < 0 || p > maxPriv {
		return badRequest(fmt.Sprintf("priv_lvl must be 0 to %d", maxPriv))
	}
	return nil
}

func checkArgs(field string, args []string) *apiError {
	if len(args) > maxArgs {
		return badRequest(fmt.Sprintf("%s: more than %d arguments", field, maxArgs))
	}
	for i, a := range args {
		if e := checkText(fmt.Sprintf("%s[%d]", field, i), a, true); e != nil {
			return e
		}
	}
	return nil
}

// ReservedPrefix starts the names of the attributes the agent sets itself from the caller's socket
// credentials (CallerAttributes). A request that supplies one is refused: accounting cannot be forged.
const ReservedPrefix = "caller_"

// CallerAttributes are the optional pairs that say who asked, from SO_PEERCRED: caller_uid, caller_gid
// and caller_pid. The backend places them first in the record, before the caller's own pairs.
func CallerAttributes(c Caller) []string {
	return []string{
		tacplus.OptionalArg(ReservedPrefix+"uid", strconv.FormatUint(uint64(c.UID), 10)),
		tacplus.OptionalArg(ReservedPrefix+"gid", strconv.FormatUint(uint64(c.GID), 10)),
		tacplus.OptionalArg(ReservedPrefix+"pid", strconv.Itoa(c.PID)),
	}
}

// checkReserved refuses a pair whose attribute name is reserved (the name ends at the first '=' or '*',
// RFC 8907 section 6.1), whatever its case.
func checkReserved(field string, pairs []string) *apiError {
	for i, p := range pairs {
		name := p
		if j := strings.IndexAny(p, "=*"); j >= 0 {
			name = p[:j]
		}
		if strings.HasPrefix(strings.ToLower(strings.TrimSpace(name)), ReservedPrefix) {
			return badRequest(fmt.Sprintf("%s[%d]: attribute %q is reserved: the agent sets %s* itself from the caller's credentials",
				field, i, safeField(name), ReservedPrefix))
		}
	}
	return nil
}

func firstError(errs ...*apiError) *apiError {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// validate checks r and fills the defaults, so that the Backend sees explicit values.
func (r *AuthenRequest) validate() *apiError {
	if r.Type == "" {
		r.Type = TypeASCII
	}
	if r.Service == "" {
		r.Service = ServiceLogin
	}
	if r.Action == "" {
		r.Action = ActionLogin
	}
	switch {
	case !slices.Contains([]string{TypeASCII, TypePAP, TypeCHAP, TypeMSCHAPv1, TypeMSCHAPv2}, r.Type):
		return badRequest("type must be ascii, pap, chap, mschapv1 or mschapv2")
	case r.Service != ServiceLogin && r.Service != ServiceEnable:
		return badRequest("service must be login or enable")
	case r.Action != ActionLogin && r.Action != ActionChpass:
		return badRequest("action must be login or chpass")
	case r.User == "" && r.Type != TypeASCII:
		// Only ASCII login may leave the user to the server's GETUSER prompt (section 5.4.2.1).
		return badRequest("user is required for type " + r.Type)
	case len(r.Password) > maxField:
		return badRequest(fmt.Sprintf("password is longer than %d bytes", maxField))
	}
	return firstError(checkText("user", r.User, false), checkText("port", r.Port, false),
		checkText("rem_addr", r.RemAddr, false), checkPriv(r.PrivLvl))
}

func (r *AuthorRequest) validate() *apiError {
	switch {
	case r.User == "":
		return badRequest("user is required")
	case len(r.AV) > 0 && (r.Service != "" || r.Cmd != "" || len(r.Args) > 0):
		return badRequest("give either av or service/cmd/args, not both")
	}
	return firstError(checkText("user", r.User, false), checkText("port", r.Port, false),
		checkText("rem_addr", r.RemAddr, false), checkPriv(r.PrivLvl), checkArgs("av", r.AV),
		checkText("service", r.Service, false), checkText("cmd", r.Cmd, true), checkArgs("args", r.Args),
		checkArgs("pairs", r.Pairs()), checkReserved("av", r.AV), r.Start.validate(r.Pairs()))
}

func (s *StartRequest) validate(pairs []string) *apiError {
	if s == nil {
		return nil
	}
	if s.TaskID == "" {
		return badRequest("start.task_id is required")
	}
	if !validAck(s.Ack) {
		return badRequest("start.ack must be delivered, durable or queued")
	}
	// The record carries caller_* (3) and task_id besides the authorization's pairs and these.
	if len(pairs)+len(s.AV)+4 > maxArgs {
		return badRequest(fmt.Sprintf("start: more than %d pairs with the authorization's", maxArgs))
	}
	return firstError(checkText("start.task_id", s.TaskID, false), checkArgs("start.av", s.AV),
		checkReserved("start.av", s.AV))
}

func (r *AcctRequest) validate() *apiError {
	switch {
	case !slices.Contains([]string{FlagStart, FlagStop, FlagWatchdog, FlagUpdate}, r.Flags):
		return badRequest("flags must be start, stop, watchdog or update")
	case r.User == "":
		return badRequest("user is required")
	case !validAck(r.Ack):
		return badRequest("ack must be delivered, durable or queued")
	}
	return firstError(checkText("user", r.User, false), checkText("port", r.Port, false),
		checkText("rem_addr", r.RemAddr, false), checkText("task_id", r.TaskID, false), checkPriv(r.PrivLvl),
		checkArgs("av", r.AV), checkReserved("av", r.AV))
}

func validAck(a string) bool {
	return a == "" || a == AckDelivered || a == AckDurable || a == AckQueued
}
