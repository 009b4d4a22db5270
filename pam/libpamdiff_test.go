package pam

import (
	"bufio"
	"context"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tacagent/tacagent/policy"
	"github.com/tacagent/tacagent/tacplus"
)

// The differential test of the policy engine against the real Linux-PAM (issue 13 point 1): generated
// stacks of pam_debug.so lines run through libpam (pam_start_confdir, so nothing is written to
// /etc/pam.d) and the same stacks through policy.Stack; for every row the outcome and the lines that ran
// must be equal.
//
// The engine's four handler results are pam_debug's return codes:
//
//	success     auth=success           PAM_SUCCESS
//	fail        auth=auth_err          PAM_AUTH_ERR
//	unavailable auth=authinfo_unavail  PAM_AUTHINFO_UNAVAIL
//	error       auth=system_err        PAM_SYSTEM_ERR (what pam_tacagent returns for the agent's "error")
//
// and the stack's Denied outcome (no line decided) is PAM_PERM_DENIED. Which lines ran is seen through
// a pam_echo.so marker line before each pam_debug line, with the control [default=ignore] (no effect
// on the stack); a jump of N lines in the engine is a jump of 2N in the PAM file, which skips the
// markers too.

// diffResults are the results in the order of the bracket values, with their PAM names.
var diffResults = []struct {
	r        policy.Result
	pamValue string // the bracket value and pam_debug's auth= argument
	err      error  // what the engine's handler returns for it
}{
	{policy.Success, "success", nil},
	{policy.Fail, "auth_err", &tacplus.Error{Class: tacplus.ErrAuthenticationFailed, Msg: "said FAIL"}},
	{policy.Unavailable, "authinfo_unavail", &tacplus.Error{Class: tacplus.ErrTimeout, Msg: "timed out"}},
	{policy.Error, "system_err", &tacplus.Error{Class: tacplus.ErrConfig, Msg: "misconfigured"}},
}

// diffControl is one control in both syntaxes.
type diffControl struct{ engine, pam string }

var diffFlags = []diffControl{{"required", "required"}, {"requisite", "requisite"}, {"sufficient", "sufficient"}, {"optional", "optional"}}

// diffActions are the actions a generated bracket uses; jumps are engine counts (the PAM file doubles them).
var diffActions = []string{"ok", "done", "bad", "die", "ignore", "reset", "1", "2", "3"}

// bracket renders a bracket control from per-result actions ("" = not named) and a default ("" = none).
func bracket(actions [4]string, def string) diffControl {
	var e, p []string
	pamAction := func(a string) string {
		if n, err := strconv.Atoi(a); err == nil {
			return strconv.Itoa(2 * n)
		}
		return a
	}
	for i, a := range actions {
		if a == "" {
			continue
		}
		e = append(e, policy.Results[i].String()+"="+a)
		p = append(p, diffResults[i].pamValue+"="+pamAction(a))
	}
	if def != "" {
		e = append(e, "default="+def)
		p = append(p, "default="+pamAction(def))
	}
	if len(e) == 0 { // empty brackets are not a control; everything defaults to bad
		e, p = []string{"default=bad"}, []string{"default=bad"}
	}
	return diffControl{"[" + strings.Join(e, " ") + "]", "[" + strings.Join(p, " ") + "]"}
}

// diffRow is one stack with the result each line gives.
type diffRow struct {
	controls []diffControl
	results  []int // index into diffResults
}

func (r diffRow) String() string {
	parts := make([]string, len(r.controls))
	for i, c := range r.controls {
		parts[i] = c.engine + " -> " + diffResults[r.results[i]].r.String()
	}
	return strings.Join(parts, "; ")
}

// diffRows generates the rows: every 1-line stack over the flags and every single-value bracket with
// every default; every 2-line stack over the flags and a fixed set of brackets (the recipes' controls,
// reset, jumps); and random 3-line stacks with random brackets, from a fixed seed.
func diffRows() []diffRow {
	var rows []diffRow
	one := append([]diffControl(nil), diffFlags...)
	for ri := range diffResults {
		for _, a := range diffActions {
			for _, d := range append([]string{""}, diffActions...) {
				var acts [4]string
				acts[ri] = a
				one = append(one, bracket(acts, d))
			}
		}
	}
	for _, c := range one {
		for ri := range diffResults {
			rows = append(rows, diffRow{[]diffControl{c}, []int{ri}})
		}
	}
	two := append([]diffControl(nil), diffFlags...)
	for _, b := range []struct {
		acts [4]string
		def  string
	}{
		{[4]string{"done", "die", "ignore", ""}, "die"}, // policy.MethodList
		{[4]string{"done", "", "", ""}, "die"},          // policy.MethodListEnd
		{[4]string{"done", "", "ignore", ""}, "die"},    // docs/pam.md's sshd recipe
		{[4]string{"ok", "", "ignore", ""}, "bad"},      // its account line
		{[4]string{"1", "", "", ""}, "ignore"},          // Debian's common-auth
		{[4]string{"ok", "", "", ""}, "reset"},          //
		{[4]string{"reset", "", "", ""}, "ignore"},      //
		{[4]string{"", "die", "", ""}, "ok"},            //
		{[4]string{"ok", "bad", "2", "die"}, ""},        //
		{[4]string{"bad", "", "", ""}, "ignore"},        // a success counted as failure
		{[4]string{"", "done", "", ""}, "ignore"},       //
		{[4]string{"done", "ok", "bad", "1"}, "ignore"}, //
		{[4]string{"", "", "", ""}, "ignore"},           // nothing decides
		{[4]string{"", "", "", ""}, "1"},                // always jump
	} {
		two = append(two, bracket(b.acts, b.def))
	}
	for _, c0 := range two {
		for _, c1 := range two {
			for r0 := range diffResults {
				for r1 := range diffResults {
					rows = append(rows, diffRow{[]diffControl{c0, c1}, []int{r0, r1}})
				}
			}
		}
	}
	rng := rand.New(rand.NewSource(13))
	randomControl := func() diffControl {
		if rng.Intn(3) == 0 {
			return diffFlags[rng.Intn(len(diffFlags))]
		}
		var acts [4]string
		for i := range acts {
			if rng.Intn(3) > 0 {
				acts[i] = diffActions[rng.Intn(len(diffActions))]
			}
		}
		def := ""
		if rng.Intn(3) > 0 {
			def = diffActions[rng.Intn(len(diffActions))]
		}
		return bracket(acts, def)
	}
	for i := 0; i < 4000; i++ {
		row := diffRow{}
		for j := 0; j < 3; j++ {
			row.controls = append(row.controls, randomControl())
			row.results = append(row.results, rng.Intn(len(diffResults)))
		}
		rows = append(rows, row)
	}
	return rows
}

// pamDiffPrerequisites lists what the differential test needs; a missing one fails it (never a skip).
func pamDiffPrerequisites() []string {
	var missing []string
	if _, err := exec.LookPath("gcc"); err != nil {
		missing = append(missing, "gcc")
	}
	if _, err := os.Stat("/usr/include/security/pam_appl.h"); err != nil {
		missing = append(missing, "libpam0g-dev (/usr/include/security/pam_appl.h)")
	}
	for _, m := range []string{"pam_debug.so", "pam_echo.so"} {
		found := false
		for _, dir := range []string{"/lib/x86_64-linux-gnu/security", "/usr/lib/x86_64-linux-gnu/security",
			"/lib/aarch64-linux-gnu/security", "/usr/lib/aarch64-linux-gnu/security", "/lib/security", "/usr/lib/security", "/lib64/security"} {
			if _, err := os.Stat(filepath.Join(dir, m)); err == nil {
				found = true
			}
		}
		if !found {
			missing = append(missing, "libpam-modules ("+m+")")
		}
	}
	return missing
}

// libpamOutcome is what libpam did with one row.
type libpamOutcome struct {
	code int
	ran  []int // the lines that ran
}

// runLibpam writes each row as a service file and runs them all through one pamdiff process.
func runLibpam(t *testing.T, rows []diffRow) (codes map[policy.Result]int, out []libpamOutcome) {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "pamdiff")
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	if b, err := exec.CommandContext(ctx, "gcc", "-std=gnu11", "-Wall", "-Wextra", "-Werror", "-O2", "-o", bin,
		"testdata/pamdiff.c", "-lpam").CombinedOutput(); err != nil {
		t.Fatalf("building the libpam harness: %v\n%s", err, b)
	}
	conf := filepath.Join(dir, "pam.d")
	if err := os.Mkdir(conf, 0o755); err != nil {
		t.Fatal(err)
	}
	var names strings.Builder
	for i, row := range rows {
		var f strings.Builder
		for j, c := range row.controls {
			fmt.Fprintf(&f, "auth [default=ignore] pam_echo.so L%d\n", j)
			fmt.Fprintf(&f, "auth %s pam_debug.so auth=%s\n", c.pam, diffResults[row.results[j]].pamValue)
		}
		name := "row" + strconv.Itoa(i)
		if err := os.WriteFile(filepath.Join(conf, name), []byte(f.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		names.WriteString(name + "\n")
	}
	runCtx, runCancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer runCancel()
	cmd := exec.CommandContext(runCtx, bin, conf)
	cmd.Stdin = strings.NewReader(names.String())
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	if err != nil {
		t.Fatalf("libpam harness: %v\n%s", err, stderr.String())
	}
	sc := bufio.NewScanner(strings.NewReader(string(stdout)))
	if !sc.Scan() {
		t.Fatal("libpam harness: no output")
	}
	var cs [5]int
	if _, err := fmt.Sscanf(sc.Text(), "codes %d %d %d %d %d", &cs[0], &cs[1], &cs[2], &cs[3], &cs[4]); err != nil {
		t.Fatalf("libpam harness: first line %q: %v", sc.Text(), err)
	}
	codes = map[policy.Result]int{policy.Success: cs[0], policy.Denied: cs[1], policy.Fail: cs[2],
		policy.Unavailable: cs[3], policy.Error: cs[4]}
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 3 {
			t.Fatalf("libpam harness: line %q", sc.Text())
		}
		i, err1 := strconv.Atoi(strings.TrimPrefix(f[0], "row"))
		code, err2 := strconv.Atoi(f[1])
		if err1 != nil || err2 != nil || i != len(out) {
			t.Fatalf("libpam harness: line %q (want row%d)", sc.Text(), len(out))
		}
		o := libpamOutcome{code: code}
		for _, m := range strings.Split(f[2], ",") {
			if n, ok := strings.CutPrefix(m, "L"); ok {
				k, err := strconv.Atoi(n)
				if err != nil {
					t.Fatalf("libpam harness: marker %q", m)
				}
				o.ran = append(o.ran, k)
			}
		}
		out = append(out, o)
	}
	if len(out) != len(rows) {
		t.Fatalf("libpam harness answered %d rows of %d\n%s", len(out), len(rows), stderr.String())
	}
	return codes, out
}

// diffHandler gives one scripted result and records that it ran.
type diffHandler struct {
	line int
	err  error
	ran  *[]int
}

func (h diffHandler) Kind() string { return "debug" }
func (h diffHandler) Authenticate(context.Context, policy.Request, policy.Conversation) (policy.Reply, error) {
	*h.ran = append(*h.ran, h.line)
	return policy.Reply{}, h.err
}

func runEngine(t *testing.T, row diffRow) (policy.Result, []int) {
	t.Helper()
	var ran []int
	elems := make([]policy.Element, len(row.controls))
	for i, c := range row.controls {
		ctl, err := policy.ParseControl(c.engine)
		if err != nil {
			t.Fatalf("row %s: %v", row, err)
		}
		elems[i] = policy.Element{Name: "L" + strconv.Itoa(i), Handler: diffHandler{i, diffResults[row.results[i]].err, &ran}, Control: ctl}
	}
	st, err := policy.NewStack(time.Now, elems...)
	if err != nil {
		t.Fatalf("row %s: %v", row, err)
	}
	auth, rc, err := st.Authenticate(context.Background(),
		policy.Request{User: "pamdiff-user", Password: "pw", Type: policy.PAP, Service: policy.Login}, nil, nil)
	if (rc.Result == policy.Success) != (err == nil) || (err == nil) != (auth != nil) {
		t.Fatalf("row %s: result %s with err %v, auth %v", row, rc.Result, err, auth)
	}
	return rc.Result, ran
}

func TestLibpamDifferential(t *testing.T) {
	if missing := pamDiffPrerequisites(); len(missing) > 0 {
		t.Fatal("the libpam differential test needs " + strings.Join(missing, ", ") +
			" (apt-get install gcc libpam0g-dev libpam-modules; see .ci/run)")
	}
	rows := diffRows()
	start := time.Now()
	codes, libpam := runLibpam(t, rows)
	t.Logf("libpam ran %d stacks in %s", len(rows), time.Since(start).Round(time.Millisecond))
	if len(rows) < 3000 {
		t.Fatalf("only %d rows", len(rows))
	}
	seen := map[int]int{}
	bad := 0
	for i, row := range rows {
		res, ran := runEngine(t, row)
		got, want := codes[res], libpam[i]
		seen[want.code]++
		if got != want.code || fmt.Sprint(ran) != fmt.Sprint(want.ran) {
			bad++
			if bad <= 20 {
				t.Errorf("row %d: %s\n  libpam: code %d, lines %v\n  engine: %s (code %d), lines %v", i, row, want.code, want.ran, res, got, ran)
			}
		}
	}
	if bad > 0 {
		t.Fatalf("%d of %d rows differ", bad, len(rows))
	}
	// The generator must reach every outcome, or the comparison proves less than it claims.
	for r, c := range codes {
		if seen[c] == 0 {
			t.Errorf("no row where libpam returned %s (%d)", r, c)
		}
	}
	t.Logf("%d rows equal; libpam codes seen: %v", len(rows), seen)
}
