package tacplus

import "strings"

// Argument limits of RFC 8907 sections 6.1 and 7.1: each argument's length and the count are single bytes.
const (
	MaxArgLen   = 255
	MaxArgCount = 255
)

// Arg builds a mandatory argument "name=value" (section 6.1).
func Arg(name, value string) string { return name + "=" + value }

// OptionalArg builds an optional argument "name*value" (section 6.1).
func OptionalArg(name, value string) string { return name + "*" + value }

// SplitArg splits an argument at its first separator. mandatory is true for "=" and false for "*". The name
// must not contain a separator, so the first one found is the separator (section 6.1); the value may.
func SplitArg(arg string) (name, value string, mandatory bool, ok bool) {
	i := strings.IndexAny(arg, "=*")
	if i <= 0 {
		return "", "", false, false
	}
	return arg[:i], arg[i+1:], arg[i] == '=', true
}

// checkArg validates one argument against section 6.1: at most 255 bytes, a non-empty name followed by "="
// or "*", and printable US-ASCII throughout (section 3.7).
func checkArg(i int, arg string) error {
	if len(arg) > MaxArgLen {
		return errf(ReasonAVPair, "arg", "argument %d is %d bytes, the limit is %d", i, len(arg), MaxArgLen)
	}
	if _, _, _, ok := SplitArg(arg); !ok {
		return errf(ReasonAVPair, "arg", "argument %d has no name or no '=' / '*' separator", i)
	}
	if !printable(arg, false) {
		return errf(ReasonText, "arg", "argument %d is not printable US-ASCII (RFC 8907 section 3.7)", i)
	}
	return nil
}

// checkArgs validates a whole argument list, count included.
func checkArgs(args []string) error {
	if len(args) > MaxArgCount {
		return errf(ReasonAVPair, "arg_cnt", "%d arguments, the limit is %d", len(args), MaxArgCount)
	}
	for i, a := range args {
		if err := checkArg(i, a); err != nil {
			return err
		}
	}
	return nil
}
