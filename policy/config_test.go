package policy

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/tacagent/tacagent/tacplus"
)

func TestParseControl(t *testing.T) {
	// Each flag word is exactly the bracket form pam.conf(5) gives for it (restricted to our results).
	for word, bracket := range map[string]string{
		"required":   "[success=ok default=bad]",
		"requisite":  "[success=ok default=die]",
		"sufficient": "[success=done default=ignore]",
		"optional":   "[success=ok default=ignore]",
	} {
		w, err1 := ParseControl(word)
		b, err2 := ParseControl(bracket)
		if err1 != nil || err2 != nil || w != b {
			t.Errorf("%s = %v (%v), %s = %v (%v)", word, w, err1, bracket, b, err2)
		}
		if w.String() != word || b.String() != word {
			t.Errorf("String() = %q, %q; want %q", w, b, word)
		}
	}
	c, err := ParseControl(" [success=ok fail=die unavailable=ignore default=bad] ")
	if err != nil {
		t.Fatal(err)
	}
	want := map[Result]Action{Success: OK, Fail: Die, Unavailable: Ignore, Error: Bad}
	for r, a := range want {
		if c.Action(r) != a {
			t.Errorf("%s -> %s, want %s", r, c.Action(r), a)
		}
	}
	if c.String() != "[success=ok fail=die unavailable=ignore error=bad]" {
		t.Errorf("String() = %q", c)
	}
	if MethodList.String() != "[success=done fail=die unavailable=ignore error=die]" {
		t.Errorf("MethodList = %s", MethodList)
	}
	if NewControl(map[Result]Action{Success: Done}, Ignore) != Sufficient {
		t.Error("NewControl does not build sufficient")
	}
	if (Control{}).Action(Success) != Bad || Required.Action(0) != Bad {
		t.Error("an invalid control or result must act as bad")
	}
	for _, bad := range []string{
		"", "Required", "sufficent", "[]", "[success=ok", "success=ok]", "[success]",
		"[success=okk]", "[success=0]", "[success=201]", "[success=-1]", "[success=+1]", "[user_unknown=ignore]", "[success=ok success=done]",
		"[default=ok default=bad]", "[=ok]",
	} {
		if _, err := ParseControl(bad); !errors.Is(err, tacplus.ErrConfig) {
			t.Errorf("ParseControl(%q) = %v, want ErrConfig", bad, err)
		}
	}
	if _, err := ParseControl("[success=0]"); err == nil || !strings.Contains(err.Error(), "jump") {
		t.Errorf("jump 0: %v", err)
	}
	for s, n := range map[string]int{"[success=2 default=ignore]": 2, "[success=ok default=200]": 200} {
		c, err := ParseControl(s)
		if err != nil {
			t.Fatalf("ParseControl(%q): %v", s, err)
		}
		got := 0
		for _, r := range Results {
			if k, ok := c.Action(r).JumpLen(); ok {
				got = k
			}
		}
		if got != n {
			t.Errorf("ParseControl(%q): jump %d, want %d", s, got, n)
		}
		if back, err := ParseControl(c.String()); err != nil || back != c {
			t.Errorf("%q: String %q does not parse back: %v", s, c.String(), err)
		}
	}
}

func FuzzParseControl(f *testing.F) {
	for _, s := range []string{"required", "[success=ok fail=die unavailable=ignore default=bad]", "[default=reset]", "[a=b=c]", "[ ]"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseControl(s)
		if err != nil {
			return
		}
		if !c.Valid() {
			t.Fatalf("%q parsed to an invalid control", s)
		}
		again, err := ParseControl(c.String())
		if err != nil || again != c {
			t.Fatalf("%q -> %q does not round-trip: %v", s, c, err)
		}
	})
}

// daemonConfig stands for the daemon's config, which embeds the section and decodes strictly.
type daemonConfig struct {
	Authentication Config `yaml:"authentication"`
}

func decodeStrict(t *testing.T, doc string) (Config, error) {
	t.Helper()
	var dc daemonConfig
	d := yaml.NewDecoder(strings.NewReader(doc))
	d.KnownFields(true)
	err := d.Decode(&dc)
	return dc.Authentication, err
}

// docExamples returns the YAML examples of docs/policy.md, so that the documentation cannot drift from
// the code.
func docExamples(t *testing.T) []string {
	t.Helper()
	md, err := os.ReadFile(filepath.Join("..", "docs", "policy.md"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllSubmatch(md, -1) {
		out = append(out, string(m[1]))
	}
	if len(out) != 3 {
		t.Fatalf("docs/policy.md has %d yaml examples, want 3", len(out))
	}
	return out
}

func TestDocExamples(t *testing.T) {
	localPath := writeFile(t, "admin:"+mustCrypt(t, "local-pw", "$6$s")+"\n")
	ex := docExamples(t)
	build := func(t *testing.T, doc string, agent *fakeAgent) *Stack {
		t.Helper()
		doc = strings.ReplaceAll(doc, "/etc/tacagent/local-users", localPath)
		c, err := decodeStrict(t, doc)
		if err != nil {
			t.Fatal(err)
		}
		st, err := c.Build(Registry{Tacacs: agent, Groups: []string{"core", "backup"}, Now: newClock().Now})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	type scenario struct {
		core, backup error
		password     Password
		want         Result
		tried        string // the lines tried, by name
	}
	down := func(addr string) error { return &tacplus.Error{Class: tacplus.ErrUnreachable, Server: addr} }
	run := func(t *testing.T, doc string, sc []scenario) {
		for _, s := range sc {
			agent := &fakeAgent{groups: map[string][]fakeServer{
				"core": {{addr: "a:49", err: s.core}}, "backup": {{addr: "b:49", err: s.backup}},
			}}
			st := build(t, doc, agent)
			_, rc, _ := st.Authenticate(context.Background(), Request{User: "admin", Password: s.password, Type: PAP, Service: Login}, nil, nil)
			var tried []string
			for _, step := range rc.Steps {
				if step.Tried {
					tried = append(tried, step.Name)
				}
			}
			if rc.Result != s.want || strings.Join(tried, ",") != s.tried {
				t.Errorf("core=%v backup=%v: %s tried [%s]; want %s tried [%s] (%s)",
					tacplus.ClassName(s.core), tacplus.ClassName(s.backup), rc.Result, strings.Join(tried, ","), s.want, s.tried, rc.Explain())
			}
		}
	}
	t.Run("tacacs only", func(t *testing.T) {
		run(t, ex[0], []scenario{
			{nil, nil, "pw", Success, "core"},
			{failAt("a:49", "no"), nil, "pw", Fail, "core"},
			{down("a:49"), nil, "pw", Unavailable, "core"},
		})
		if got := build(t, ex[0], &fakeAgent{}).String(); got != "core(tacacs) "+MethodListEnd.String() {
			t.Errorf("stack %s", got)
		}
	})
	t.Run("local fallback when unreachable", func(t *testing.T) {
		run(t, ex[1], []scenario{
			{nil, nil, "local-pw", Success, "core"},
			{failAt("a:49", "no"), nil, "local-pw", Fail, "core"},
			{down("a:49"), nil, "local-pw", Success, "core,break-glass"},
			{timeoutAt("a:49"), nil, "wrong", Fail, "core,break-glass"},
			{&tacplus.Error{Class: tacplus.ErrBadSecret, Server: "a:49"}, nil, "local-pw", Success, "core,break-glass"},
			{&tacplus.Error{Class: tacplus.ErrAborted}, nil, "local-pw", Error, "core"},
		})
	})
	t.Run("two server groups", func(t *testing.T) {
		sc := []scenario{
			{nil, nil, "pw", Success, "core"},
			{failAt("a:49", "no"), nil, "pw", Fail, "core"},
			{timeoutAt("a:49"), nil, "pw", Success, "core,backup"},
			{&tacplus.Error{Class: tacplus.ErrServerError, Server: "a:49"}, failAt("b:49", "no"), "pw", Fail, "core,backup"},
			{timeoutAt("a:49"), timeoutAt("b:49"), "pw", Unavailable, "core,backup"},
			{&tacplus.Error{Class: tacplus.ErrAborted}, nil, "pw", Error, "core"},
		}
		run(t, ex[2], sc)
		// It is also the default stack.
		run(t, "authentication: {}\n", sc)
	})
}

func TestConfigErrors(t *testing.T) {
	local := writeFile(t, "a:*\n")
	badLocal := writeFile(t, "a:*\nb:$y$j9T$abc$def\n")
	reg := Registry{Tacacs: &fakeAgent{}, Groups: []string{"core", "backup"}, Now: newClock().Now}
	for _, tc := range []struct {
		name, doc, want string
	}{
		{"unknown field", "authentication:\n  stack:\n    - tacacs: core\n      contrl: required\n", `line 4: contrl: unknown field`},
		{"unknown top field", "authentication:\n  stak: []\n", "field stak not found"},
		{"bad control", "authentication:\n  stack:\n    - tacacs: core\n    - tacacs: backup\n      control: \"[success=okk]\"\n", `line 5: control: control "[success=okk]": success: unknown action "okk"`},
		{"control not a string", "authentication:\n  stack:\n    - tacacs: core\n      control: [ok]\n", "line 4: control: want a flag word"},
		{"entry not a mapping", "authentication:\n  stack:\n    - core\n", "line 3: stack entry: want a mapping"},
		{"field twice", "authentication:\n  stack:\n    - tacacs: core\n      tacacs: backup\n", "line 4: tacacs: given twice"},
		{"deny not bool", "authentication:\n  stack:\n    - deny: maybe\n", "line 3: deny:"},
		{"two kinds", "authentication:\n  stack:\n    - tacacs: core\n      deny: true\n", "line 3: stack[0]: want exactly one of tacacs, local and deny"},
		{"no kind", "authentication:\n  stack:\n    - control: required\n", "line 3: stack[0]: want exactly one"},
		{"unknown group", "authentication:\n  stack:\n    - tacacs: core\n    - tacacs: cor\n", `line 4: stack[1].tacacs: unknown server group "cor"`},
		{"duplicate name", "authentication:\n  stack:\n    - tacacs: core\n    - local: " + local + "\n      name: core\n", `line 4: stack[1].name: "core" is already the name of stack[0]`},
		{"two locals unnamed", "authentication:\n  stack:\n    - local: " + local + "\n    - local: " + local + "\n", `stack[1].name: "local" is already`},
		{"bad local file", "authentication:\n  stack:\n    - tacacs: core\n    - local: " + badLocal + "\n", "line 4: stack[1].local: cannot load: " + badLocal + ":2: user \"b\": yescrypt"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := decodeStrict(t, tc.doc)
			if err == nil {
				_, err = c.Build(reg)
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
			if tc.name != "unknown top field" && !errors.Is(err, tacplus.ErrConfig) {
				t.Errorf("err %v is not ErrConfig", err)
			}
		})
	}
	var le *LineError
	c, _ := decodeStrict(t, "authentication:\n  stack:\n    - local: "+badLocal+"\n")
	if _, err := c.Build(reg); !errors.As(err, &le) || le.Line != 2 {
		t.Errorf("errors.As(*LineError) through Build: %v", err)
	}
	if _, err := (Config{}).Build(Registry{Now: newClock().Now}); !errors.Is(err, tacplus.ErrConfig) {
		t.Errorf("no stack and no groups: %v", err)
	}
	if _, err := ParseConfig([]byte("stak: []\n")); !errors.Is(err, tacplus.ErrConfig) {
		t.Errorf("ParseConfig strict: %v", err)
	}
}

func TestConfigRoundTrip(t *testing.T) {
	in := "stack:\n  - tacacs: core\n  - name: break-glass\n    local: /x\n    control: sufficient\n  - deny: true\n    control: '[success=done fail=die unavailable=ignore error=bad]'\n"
	c, err := ParseConfig([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if c.Stack[1].Line != 3 || c.Stack[1].Control != Sufficient || c.Stack[0].Control != (Control{}) {
		t.Errorf("decoded %+v", c.Stack)
	}
	var buf bytes.Buffer
	e := yaml.NewEncoder(&buf)
	e.SetIndent(2)
	if err := e.Encode(c); err != nil {
		t.Fatal(err)
	}
	again, err := ParseConfig(buf.Bytes())
	if err != nil {
		t.Fatalf("re-parse of\n%s: %v", buf.String(), err)
	}
	for i := range c.Stack {
		again.Stack[i].Line = c.Stack[i].Line
	}
	if len(again.Stack) != 3 || again.Stack[2].Control != c.Stack[2].Control || again.Stack[1] != c.Stack[1] || again.Stack[0] != c.Stack[0] {
		t.Errorf("round trip:\n%s", buf.String())
	}
}
