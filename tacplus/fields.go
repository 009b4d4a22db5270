package tacplus

import "strconv"

// unknown renders a value no table names, so that String never panics and never hides the raw number.
func unknown(kind string, v uint8) string {
	return kind + "(0x" + strconv.FormatUint(uint64(v), 16) + ")"
}

func name(table []string, kind string, v uint8) string {
	if int(v) < len(table) && table[v] != "" {
		return table[v]
	}
	return unknown(kind, v)
}

// PacketType is the header's type field (RFC 8907 section 4.1).
type PacketType uint8

// Packet types, section 4.1.
const (
	TypeAuthen PacketType = 0x01
	TypeAuthor PacketType = 0x02
	TypeAcct   PacketType = 0x03
)

var packetTypeNames = []string{TypeAuthen: "AUTHEN", TypeAuthor: "AUTHOR", TypeAcct: "ACCT"}

func (t PacketType) String() string { return name(packetTypeNames, "type", uint8(t)) }

// Valid reports whether the RFC defines t.
func (t PacketType) Valid() bool { return t >= TypeAuthen && t <= TypeAcct }

// HeaderFlag is the header's flags bit field (section 4.1).
type HeaderFlag uint8

// Header flags, section 4.1.
const (
	FlagUnencrypted   HeaderFlag = 0x01 // TAC_PLUS_UNENCRYPTED_FLAG: the body is not obfuscated
	FlagSingleConnect HeaderFlag = 0x04 // TAC_PLUS_SINGLE_CONNECT_FLAG, section 4.3
)

func (f HeaderFlag) String() string {
	if f == 0 {
		return "0"
	}
	s := ""
	add := func(n string) {
		if s != "" {
			s += "|"
		}
		s += n
	}
	if f&FlagUnencrypted != 0 {
		add("UNENCRYPTED")
	}
	if f&FlagSingleConnect != 0 {
		add("SINGLE_CONNECT")
	}
	if rest := f &^ (FlagUnencrypted | FlagSingleConnect); rest != 0 {
		add(unknown("flags", uint8(rest)))
	}
	return s
}

// AuthenAction is the START action field (section 5.1).
type AuthenAction uint8

// Authentication actions, section 5.1.
const (
	ActionLogin    AuthenAction = 0x01
	ActionChPass   AuthenAction = 0x02
	ActionSendAuth AuthenAction = 0x04
)

var authenActionNames = []string{ActionLogin: "LOGIN", ActionChPass: "CHPASS", ActionSendAuth: "SENDAUTH"}

func (a AuthenAction) String() string { return name(authenActionNames, "action", uint8(a)) }

// Valid reports whether the RFC defines a.
func (a AuthenAction) Valid() bool {
	return a == ActionLogin || a == ActionChPass || a == ActionSendAuth
}

// AuthenType is the authen_type field (sections 5.1, 6.1, 7.1).
type AuthenType uint8

// Authentication types, section 5.1. ARAP (0x04) is deprecated (section 10.5.3) and refused here.
const (
	AuthenTypeNotSet   AuthenType = 0x00 // only in authorization and accounting requests
	AuthenTypeASCII    AuthenType = 0x01
	AuthenTypePAP      AuthenType = 0x02
	AuthenTypeCHAP     AuthenType = 0x03
	AuthenTypeARAP     AuthenType = 0x04
	AuthenTypeMSCHAP   AuthenType = 0x05
	AuthenTypeMSCHAPv2 AuthenType = 0x06
)

var authenTypeNames = []string{
	AuthenTypeNotSet: "NOT_SET", AuthenTypeASCII: "ASCII", AuthenTypePAP: "PAP", AuthenTypeCHAP: "CHAP",
	AuthenTypeARAP: "ARAP", AuthenTypeMSCHAP: "MSCHAP", AuthenTypeMSCHAPv2: "MSCHAPV2",
}

func (t AuthenType) String() string { return name(authenTypeNames, "authen_type", uint8(t)) }

// AuthenService is the authen_service field (section 5.1).
type AuthenService uint8

// Authentication services, section 5.1.
const (
	ServiceNone    AuthenService = 0x00
	ServiceLogin   AuthenService = 0x01
	ServiceEnable  AuthenService = 0x02
	ServicePPP     AuthenService = 0x03
	ServicePT      AuthenService = 0x05
	ServiceRCMD    AuthenService = 0x06
	ServiceX25     AuthenService = 0x07
	ServiceNASI    AuthenService = 0x08
	ServiceFWProxy AuthenService = 0x09
)

var authenServiceNames = []string{
	ServiceNone: "NONE", ServiceLogin: "LOGIN", ServiceEnable: "ENABLE", ServicePPP: "PPP", ServicePT: "PT",
	ServiceRCMD: "RCMD", ServiceX25: "X25", ServiceNASI: "NASI", ServiceFWProxy: "FWPROXY",
}

func (s AuthenService) String() string { return name(authenServiceNames, "service", uint8(s)) }

// Valid reports whether the RFC defines s (0x04, ARAP's old service slot, is not defined).
func (s AuthenService) Valid() bool { return s <= ServiceFWProxy && s != 0x04 }

// AuthenMethod is the authen_method field of authorization and accounting requests (section 6.1).
type AuthenMethod uint8

// Authentication methods, section 6.1.
const (
	MethodNotSet     AuthenMethod = 0x00
	MethodNone       AuthenMethod = 0x01
	MethodKRB5       AuthenMethod = 0x02
	MethodLine       AuthenMethod = 0x03
	MethodEnable     AuthenMethod = 0x04
	MethodLocal      AuthenMethod = 0x05
	MethodTACACSPlus AuthenMethod = 0x06
	MethodGuest      AuthenMethod = 0x08
	MethodRADIUS     AuthenMethod = 0x10
	MethodKRB4       AuthenMethod = 0x11
	MethodRCMD       AuthenMethod = 0x20
)

var authenMethodNames = []string{
	MethodNotSet: "NOT_SET", MethodNone: "NONE", MethodKRB5: "KRB5", MethodLine: "LINE", MethodEnable: "ENABLE",
	MethodLocal: "LOCAL", MethodTACACSPlus: "TACACSPLUS", MethodGuest: "GUEST", MethodRADIUS: "RADIUS",
	MethodKRB4: "KRB4", MethodRCMD: "RCMD",
}

func (m AuthenMethod) String() string { return name(authenMethodNames, "authen_method", uint8(m)) }

// Valid reports whether the RFC defines m.
func (m AuthenMethod) Valid() bool {
	return int(m) < len(authenMethodNames) && authenMethodNames[m] != ""
}

// AuthenStatus is the status of an authentication REPLY (section 5.2).
type AuthenStatus uint8

// Authentication reply statuses, section 5.2.
const (
	AuthenStatusPass    AuthenStatus = 0x01
	AuthenStatusFail    AuthenStatus = 0x02
	AuthenStatusGetData AuthenStatus = 0x03
	AuthenStatusGetUser AuthenStatus = 0x04
	AuthenStatusGetPass AuthenStatus = 0x05
	AuthenStatusRestart AuthenStatus = 0x06
	AuthenStatusError   AuthenStatus = 0x07
	AuthenStatusFollow  AuthenStatus = 0x21
)

var authenStatusNames = []string{
	AuthenStatusPass: "PASS", AuthenStatusFail: "FAIL", AuthenStatusGetData: "GETDATA",
	AuthenStatusGetUser: "GETUSER", AuthenStatusGetPass: "GETPASS", AuthenStatusRestart: "RESTART",
	AuthenStatusError: "ERROR", AuthenStatusFollow: "FOLLOW",
}

func (s AuthenStatus) String() string { return name(authenStatusNames, "authen_status", uint8(s)) }

// Valid reports whether the RFC defines s.
func (s AuthenStatus) Valid() bool {
	return int(s) < len(authenStatusNames) && authenStatusNames[s] != ""
}

// AuthenReplyFlag is the flags field of an authentication REPLY (section 5.2).
type AuthenReplyFlag uint8

// FlagNoEcho asks the client not to echo the user's answer (TAC_PLUS_REPLY_FLAG_NOECHO).
const FlagNoEcho AuthenReplyFlag = 0x01

func (f AuthenReplyFlag) String() string {
	switch f {
	case 0:
		return "0"
	case FlagNoEcho:
		return "NOECHO"
	}
	return unknown("reply_flags", uint8(f))
}

// AuthenContinueFlag is the flags field of an authentication CONTINUE (section 5.3).
type AuthenContinueFlag uint8

// FlagAbort ends the session from the client side (TAC_PLUS_CONTINUE_FLAG_ABORT).
const FlagAbort AuthenContinueFlag = 0x01

func (f AuthenContinueFlag) String() string {
	switch f {
	case 0:
		return "0"
	case FlagAbort:
		return "ABORT"
	}
	return unknown("continue_flags", uint8(f))
}

// AuthorStatus is the status of an authorization RESPONSE (section 6.2).
type AuthorStatus uint8

// Authorization response statuses, section 6.2.
const (
	AuthorStatusPassAdd  AuthorStatus = 0x01
	AuthorStatusPassRepl AuthorStatus = 0x02
	AuthorStatusFail     AuthorStatus = 0x10
	AuthorStatusError    AuthorStatus = 0x11
	AuthorStatusFollow   AuthorStatus = 0x21
)

var authorStatusNames = []string{
	AuthorStatusPassAdd: "PASS_ADD", AuthorStatusPassRepl: "PASS_REPL", AuthorStatusFail: "FAIL",
	AuthorStatusError: "ERROR", AuthorStatusFollow: "FOLLOW",
}

func (s AuthorStatus) String() string { return name(authorStatusNames, "author_status", uint8(s)) }

// Valid reports whether the RFC defines s.
func (s AuthorStatus) Valid() bool {
	return int(s) < len(authorStatusNames) && authorStatusNames[s] != ""
}

// AcctFlag is the flags field of an accounting REQUEST (section 7.1).
type AcctFlag uint8

// Accounting flags, section 7.1. 0x01 (MORE) is deprecated.
const (
	AcctFlagStart    AcctFlag = 0x02
	AcctFlagStop     AcctFlag = 0x04
	AcctFlagWatchdog AcctFlag = 0x08
)

// String renders the record kind as section 7.2's table names it.
func (f AcctFlag) String() string {
	switch f {
	case AcctFlagStart:
		return "START"
	case AcctFlagStop:
		return "STOP"
	case AcctFlagWatchdog:
		return "WATCHDOG"
	case AcctFlagWatchdog | AcctFlagStart:
		return "WATCHDOG_UPDATE"
	}
	return unknown("acct_flags", uint8(f))
}

// AcctFlagMore is the deprecated MORE bit (section 7.2). The table of valid combinations masks it out
// ("Flags & 0xE"), so it is tolerated on receipt and never sent.
const AcctFlagMore AcctFlag = 0x01

// Valid reports whether f is one of the combinations section 7.2 allows: START, STOP, WATCHDOG without
// update, or WATCHDOG with START (an update). Every other combination, and any bit above 0x08, is invalid.
func (f AcctFlag) Valid() bool {
	switch f &^ AcctFlagMore {
	case AcctFlagStart, AcctFlagStop, AcctFlagWatchdog, AcctFlagWatchdog | AcctFlagStart:
		return true
	}
	return false
}

// AcctStatus is the status of an accounting REPLY (section 7.2).
type AcctStatus uint8

// Accounting reply statuses, section 7.2.
const (
	AcctStatusSuccess AcctStatus = 0x01
	AcctStatusError   AcctStatus = 0x02
	AcctStatusFollow  AcctStatus = 0x21
)

var acctStatusNames = []string{AcctStatusSuccess: "SUCCESS", AcctStatusError: "ERROR", AcctStatusFollow: "FOLLOW"}

func (s AcctStatus) String() string { return name(acctStatusNames, "acct_status", uint8(s)) }

// Valid reports whether the RFC defines s.
func (s AcctStatus) Valid() bool {
	return int(s) < len(acctStatusNames) && acctStatusNames[s] != ""
}

// MaxPrivLvl is the highest privilege level (section 5.1: levels 0 to 15).
const MaxPrivLvl = 15
