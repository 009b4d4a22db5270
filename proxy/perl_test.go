package proxy

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/tacagent/tacagent/tacplus/tacplustest"
)

// TestPerlAuthenTacacsPlus runs Perl's Authen::TacacsPlus (a libtac-style C client) against the front
// end: ASCII and PAP logins, pass and fail, one connection each, as pam_tacplus makes them.
func TestPerlAuthenTacacsPlus(t *testing.T) {
	perl, err := exec.LookPath("perl")
	if err == nil {
		err = exec.Command(perl, "-MAuthen::TacacsPlus", "-e1").Run()
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("perl with Authen::TacacsPlus is required in CI (Debian libauthen-tacacsplus-perl, in .ci/run): %v", err)
		}
		t.Skipf("perl with Authen::TacacsPlus not installed (apt-get install libauthen-tacacsplus-perl): %v", err)
	}
	srv := backend(t, func(c *tacplustest.Config) { c.SingleConnect = false })
	f := startFront(t, AgentBackend(newAgent(t, srv.Addr()), "", ""), nil)
	host, port, _ := strings.Cut(f.addr, ":")
	cmd := exec.Command(perl, "testdata/authen.pl", host, port)
	cmd.Stdin = bytes.NewReader(append(append([]byte(nil), localKey...), '\n'))
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("perl client hung; output so far:\n%s", out.String())
	}
	if err != nil {
		t.Fatalf("perl: %v\n%s%s", err, out.String(), stderr.String())
	}
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 {
			got[f[0]] = f[1]
		}
	}
	want := map[string]string{"ascii-pass": "1", "ascii-fail": "0", "pap-pass": "1", "pap-fail": "0"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %q, want %q (output:\n%s)", k, got[k], v, out.String())
		}
	}
	if st := srv.Stats(); st.AuthenPass != 2 || st.AuthenFail != 2 {
		t.Errorf("server saw pass=%d fail=%d", st.AuthenPass, st.AuthenFail)
	}
	if n := f.counter(f.m.Proxy.Connections); n != 4 {
		t.Errorf("%v connections, want 4", n)
	}
}
