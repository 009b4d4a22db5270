package policy

import (
	"os/exec"
	"strings"
	"testing"
)

// The test vectors published in Ulrich Drepper's "Unix crypt using SHA-256 and SHA-512" specification
// (SHA-crypt.txt): the setting given to crypt(3), the key, and the expected output. They exercise the salt
// cut at 16 characters, explicit "rounds=5000", and rounds below the minimum being raised to 1000.
var shaCryptVectors = []struct {
	setting, key, want string
	slow               bool // many rounds: skipped with -short
}{
	{"$5$saltstring", "Hello world!",
		"$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5", false},
	{"$5$rounds=10000$saltstringsaltstring", "Hello world!",
		"$5$rounds=10000$saltstringsaltst$3xv.VbSHBb41AL9AvLeujZkZRBAwqFMz2.opqey6IcA", false},
	{"$5$rounds=5000$toolongsaltstring", "This is just a test",
		"$5$rounds=5000$toolongsaltstrin$Un/5jzAHMgOGZ5.mWJpuVolil07guHPvOW8mGRcvxa5", false},
	{"$5$rounds=1400$anotherlongsaltstring",
		"a very much longer text to encrypt.  This one even stretches over morethan one line.",
		"$5$rounds=1400$anotherlongsalts$Rx.j8H.h8HjEDGomFU8bDkXm3XIUnzyxf12oP84Bnq1", false},
	{"$5$rounds=77777$short", "we have a short salt string but not a short password",
		"$5$rounds=77777$short$JiO1O3ZpDAxGJeaDIuqCoEFysAe1mZNJRs3pw0KQRd/", true},
	{"$5$rounds=123456$asaltof16chars..", "a short string",
		"$5$rounds=123456$asaltof16chars..$gP3VQ/6X7UUEW3HkBn2w1/Ptq2jxPyzV/cZKmF/wJvD", true},
	{"$5$rounds=10$roundstoolow", "the minimum number is still observed",
		"$5$rounds=1000$roundstoolow$yfvwcWrQ8l/K0DAWyuPMDNHpIVlTQebY9l/gL972bIC", false},

	{"$6$saltstring", "Hello world!",
		"$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1", false},
	{"$6$rounds=10000$saltstringsaltstring", "Hello world!",
		"$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/UrjmM0Dp8vOuZeHBy/YTBmSK6H9qs/y3RnOaw5v.", false},
	{"$6$rounds=5000$toolongsaltstring", "This is just a test",
		"$6$rounds=5000$toolongsaltstrin$lQ8jolhgVRVhY4b5pZKaysCLi0QBxGoNeKQzQ3glMhwllF7oGDZxUhx1yxdYcz/e1JSbq3y6JMxxl8audkUEm0", false},
	{"$6$rounds=1400$anotherlongsaltstring",
		"a very much longer text to encrypt.  This one even stretches over morethan one line.",
		"$6$rounds=1400$anotherlongsalts$POfYwTEok97VWcjxIiSOjiykti.o/pQs.wPvMxQ6Fm7I6IoYN3CmLs66x9t0oSwbtEW7o7UmJEiDwGqd8p4ur1", false},
	{"$6$rounds=77777$short", "we have a short salt string but not a short password",
		"$6$rounds=77777$short$WuQyW2YR.hBNpjjRhpYD/ifIw05xdfeEyQoMxIXbkvr0gge1a1x3yRULJ5CCaUeOxFmtlcGZelFl5CxtgfiAc0", true},
	{"$6$rounds=123456$asaltof16chars..", "a short string",
		"$6$rounds=123456$asaltof16chars..$BtCwjqMJGx5hrJhZywWvt0RLE8uZ4oPwcelCjmw2kSYu.Ec6ycULevoBK25fs2xXgMNrCzIMVcgEJAstJeonj1", true},
	{"$6$rounds=10$roundstoolow", "the minimum number is still observed",
		"$6$rounds=1000$roundstoolow$kUMsbe306n21p9R.FRkW3IGn.S9NPN0x50YhH1xhLsPuWGsUSklZt58jaTfF4ZEQpyUNGc0dqbpBYYBaHHrsX.", false},
}

func TestShaCryptSpecVectors(t *testing.T) {
	for _, v := range shaCryptVectors {
		if v.slow && testing.Short() {
			continue
		}
		got, err := shaCryptString(v.key, v.setting)
		if err != nil || got != v.want {
			t.Errorf("crypt(%q, %q) = %q, %v; want %q", v.key, v.setting, got, err, v.want)
			continue
		}
		// Every output is also a valid stored hash that verifies the key and nothing else.
		h, err := parseShaCrypt(v.want)
		if err != nil {
			t.Errorf("parse(%q): %v", v.want, err)
			continue
		}
		if !h.verify([]byte(v.key)) {
			t.Errorf("verify(%q) with the right key = false", v.want)
		}
		if h.verify([]byte(v.key + "x")) {
			t.Errorf("verify(%q) with a wrong key = true", v.want)
		}
	}
}

// TestShaCryptAgainstOpenSSL checks the implementation against a real system tool: `openssl passwd -5/-6`
// (OpenSSL 1.1.1 and later) with salts of every length, rounds and odd keys. .ci/run installs openssl.
func TestShaCryptAgainstOpenSSL(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Fatal("openssl is not installed: it is the independent check of SHA-crypt (apt-get install openssl)")
	}
	keys := []string{"", "a", "pässwörd", strings.Repeat("k", 63), strings.Repeat("long", 40), "with space\ttab"}
	salts := []string{"s", "abcdefgh", "0123456789abcdef", "./AZaz09", "x1y2"} // openssl refuses an empty salt
	checked := 0
	for _, alg := range []string{"5", "6"} {
		for i, key := range keys {
			// openssl takes the rounds inside -salt, as "rounds=N$salt".
			opSalt := salts[i%len(salts)]
			if i%2 == 1 {
				opSalt = "rounds=1234$" + opSalt
			}
			cmd := exec.Command(openssl, "passwd", "-"+alg, "-salt", opSalt, "-stdin")
			cmd.Stdin = strings.NewReader(key + "\n")
			out, err := cmd.Output()
			want := strings.TrimSpace(string(out))
			if err != nil || !strings.HasPrefix(want, "$"+alg+"$") {
				t.Logf("openssl passwd -%s -salt %q: %v %q (skipped)", alg, opSalt, err, want)
				continue
			}
			got, err := shaCryptString(key, "$"+alg+"$"+opSalt)
			if err != nil || got != want {
				t.Errorf("crypt(%q, %q) = %q, %v; openssl says %q", key, opSalt, got, err, want)
			}
			checked++
		}
	}
	// openssl cannot hash every key above (it reads the empty key from stdin as no input); the rest must
	// all have been compared.
	if checked < 10 {
		t.Fatalf("only %d hashes could be compared with %s (want at least 10): does it lack passwd -5/-6?", checked, openssl)
	}
	t.Logf("%d hashes agree with %s", checked, openssl)
}

func TestParseShaCryptRefuses(t *testing.T) {
	good := "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1"
	digest := good[len("$6$saltstring$"):]
	for _, bad := range []string{
		"$6$saltstring",                                         // no digest
		"$6$saltstring$" + digest[1:],                           // short digest
		"$6$saltstring$" + digest + "x",                         // long digest
		"$6$saltstring$" + strings.Replace(digest, "v", "!", 1), // bad alphabet
		"$6$0123456789abcdefg$" + digest,                        // salt of 17
		"$6$rounds=999$salt$" + digest,                          // rounds below minimum
		"$6$rounds=01000$salt$" + digest,                        // leading zero
		"$6$rounds=1e4$salt$" + digest,                          // not decimal
		"$6$rounds=1000000000$salt$" + digest,                   // above maximum
		"$6$rounds=5000",                                        // rounds without salt
		"$6$sa lt$" + digest,                                    // space in salt
		"$5$saltstring$" + digest,                               // SHA-512 digest length under $5$
		"$1$saltstring$" + digest,                               // not SHA-crypt
	} {
		if _, err := parseShaCrypt(bad); err == nil {
			t.Errorf("parseShaCrypt(%q) = nil error", bad)
		} else if strings.Contains(err.Error(), digest[:10]) {
			t.Errorf("error %q quotes the hash", err)
		}
	}
}
