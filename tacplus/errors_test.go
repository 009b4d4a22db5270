package tacplus_test

import (
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/tacagent/tacagent/tacplus"
)

// TestDecodeErrorClass: a DecodeError belongs to ErrBadSecret when its Reason is ReasonBadSecret and to
// ErrProtocol otherwise, and to no other class, also when wrapped.
func TestDecodeErrorClass(t *testing.T) {
	reasons := tacplus.Reasons()
	if len(reasons) != 12 {
		t.Fatalf("Reasons() has %d entries", len(reasons))
	}
	names := map[string]bool{}
	for _, r := range reasons {
		if names[r.String()] {
			t.Fatalf("reason name %q used twice", r)
		}
		names[r.String()] = true
		de := &tacplus.DecodeError{Reason: r, Field: "f", Detail: "d"}
		want := tacplus.ErrProtocol
		if r == tacplus.ReasonBadSecret {
			want = tacplus.ErrBadSecret
		}
		for _, err := range []error{de, fmt.Errorf("reading reply: %w", de), &tacplus.Error{Class: nil, Err: de}} {
			for _, class := range tacplus.Classes {
				if errors.Is(err, class) != (class == want) {
					t.Errorf("%s: errors.Is(%v, %v) = %v", r, err, class, !(class == want))
				}
			}
			if tacplus.ReasonOf(err) != r {
				t.Errorf("ReasonOf(%v) = %s", err, tacplus.ReasonOf(err))
			}
		}
		if got := de.Error(); got != "tacplus: "+r.String()+" in f: d" {
			t.Errorf("Error() = %q", got)
		}
	}
	if tacplus.ReasonOf(nil) != 0 || tacplus.ReasonOf(io.EOF) != 0 {
		t.Error("ReasonOf of a non-codec error is not 0")
	}
	if got := (&tacplus.DecodeError{Reason: tacplus.ReasonShort}).Error(); got != "tacplus: short" {
		t.Errorf("bare DecodeError prints %q", got)
	}
}

// TestClassNames: every class has its stable name (they are metric labels and API codes), ClassOf and
// ClassName see through *Error and fmt wrapping.
func TestClassNames(t *testing.T) {
	want := map[error]string{
		tacplus.ErrAuthenticationFailed: "authentication_failed",
		tacplus.ErrServerError:          "server_error",
		tacplus.ErrUnreachable:          "unreachable",
		tacplus.ErrTimeout:              "timeout",
		tacplus.ErrConnectionLost:       "connection_lost",
		tacplus.ErrProtocol:             "protocol",
		tacplus.ErrBadSecret:            "bad_secret",
		tacplus.ErrAborted:              "aborted",
		tacplus.ErrConfig:               "config",
		tacplus.ErrDenied:               "denied",
	}
	if len(tacplus.Classes) != len(want) {
		t.Fatalf("Classes has %d entries, want %d", len(tacplus.Classes), len(want))
	}
	for _, class := range tacplus.Classes {
		name, ok := want[class]
		if !ok {
			t.Fatalf("unexpected class %v", class)
		}
		for _, err := range []error{class, fmt.Errorf("x: %w", class), tacplus.NewError(class, "msg %d", 1)} {
			if got := tacplus.ClassName(err); got != name {
				t.Errorf("ClassName(%v) = %q, want %q", err, got, name)
			}
			if tacplus.ClassOf(err) != class {
				t.Errorf("ClassOf(%v) = %v", err, tacplus.ClassOf(err))
			}
		}
	}
	if tacplus.ClassName(nil) != "" || tacplus.ClassOf(nil) != nil {
		t.Error("nil error has a class")
	}
	if tacplus.ClassName(io.EOF) != "unknown" || tacplus.ClassOf(io.EOF) != nil {
		t.Error("io.EOF has a class")
	}
}

// TestErrorUnwrap: *Error exposes both its class and its cause to errors.Is and errors.As, and renders every
// context field.
func TestErrorUnwrap(t *testing.T) {
	cause := &tacplus.DecodeError{Reason: tacplus.ReasonEnum, Field: "status"}
	e := &tacplus.Error{Class: tacplus.ErrServerError, Server: "127.0.0.1:49", SessionID: 0xbeef, State: "wait_reply", Msg: "boom", Err: cause}
	if !errors.Is(e, tacplus.ErrServerError) || !errors.Is(e, tacplus.ErrProtocol) {
		t.Fatal("class or cause not reachable")
	}
	var de *tacplus.DecodeError
	if !errors.As(e, &de) || de != cause {
		t.Fatal("errors.As does not find the cause")
	}
	if got := e.Error(); got != "server error: boom (server=127.0.0.1:49, session=0xbeef, state=wait_reply): tacplus: enum in status" {
		t.Errorf("Error() = %q", got)
	}
	for _, c := range []struct {
		e    *tacplus.Error
		want int
		text string
	}{
		{&tacplus.Error{}, 0, "error"},
		{&tacplus.Error{Class: tacplus.ErrTimeout}, 1, "timeout"},
		{&tacplus.Error{Err: io.EOF}, 1, "error: EOF"},
		{&tacplus.Error{Class: tacplus.ErrAborted, Err: io.EOF}, 2, "aborted: EOF"},
	} {
		if got := len(c.e.Unwrap()); got != c.want {
			t.Errorf("%v: Unwrap has %d errors, want %d", c.e, got, c.want)
		}
		if c.e.Error() != c.text {
			t.Errorf("Error() = %q, want %q", c.e.Error(), c.text)
		}
	}
	if got := tacplus.NewError(tacplus.ErrConfig, "bad %s", "thing").Error(); got != "configuration error: bad thing" {
		t.Errorf("NewError = %q", got)
	}
}
