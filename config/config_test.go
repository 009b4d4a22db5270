package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tacagent/tacagent/agentconfig"
	"github.com/tacagent/tacagent/tacplus"
)

// The secrets used by the tests. They must never appear in an error or a rendering of a Config.
const (
	fileKey = "file-key-0123456789-abcdef" // in the key file written by keyFile
	envKey  = "env-key-0123456789-ghijkl"  // in testEnv
	testEnv = "TACAGENT_TEST_KEY"
)

// keyFile writes content to a fresh file with mode and returns its path.
func keyFile(t *testing.T, content string, mode fs.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "tac.key")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	// Chmod, not WriteFile's mode, so that the umask does not hide a world-readable mode.
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

// expand replaces KEYFILE with a private key file holding fileKey and sets testEnv to envKey.
func expand(t *testing.T, doc string) string {
	t.Helper()
	t.Setenv(testEnv, envKey)
	return strings.ReplaceAll(doc, "KEYFILE", keyFile(t, fileKey+"\n", 0o600))
}

func parse(t *testing.T, doc string) (*Config, error) {
	t.Helper()
	return Parse([]byte(expand(t, doc)), "tacagent.yaml")
}

func mustParse(t *testing.T, doc string) *Config {
	t.Helper()
	c, err := parse(t, doc)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return c
}

// noSecret fails when s holds a test key.
func noSecret(t *testing.T, what, s string) {
	t.Helper()
	for _, k := range []string{fileKey, envKey, "short-secret", "inline-secret-value"} {
		if strings.Contains(s, k) {
			t.Errorf("%s shows a key: %q", what, s)
		}
	}
}

const valid = `servers:
  - name: tac1
    address: 127.0.0.1:4949
    key_file: KEYFILE
  - name: tac2
    address: "[::1]"
    key_env: TACAGENT_TEST_KEY
groups:
  - name: core
    servers: [tac1, tac2]
  - name: backup
    servers: [tac2]
`

func TestBadConfigs(t *testing.T) {
	// One line per server, so that line numbers below are easy to check: line 1 "servers:", line 2 the item.
	srv := func(extra string) string {
		return "servers:\n  - address: 127.0.0.1:4949\n" + extra
	}
	withFile := func(extra string) string { return srv("    key_file: KEYFILE\n" + extra) }
	tests := []struct {
		name  string
		doc   string
		setup func(t *testing.T, doc string) string // rewrites doc (key files, environment)
		field string
		line  int
		msg   string
	}{
		{name: "unknown top-level field", doc: withFile("severs: []\n"),
			field: "severs", line: 4, msg: "unknown field (known: servers, groups, dead_time"},
		{name: "unknown nested field", doc: withFile("    timout: 5s\n"),
			field: "servers[0].timout", line: 4, msg: "unknown field (known: name, address, key_file"},
		{name: "unknown field deep in api", doc: withFile("api:\n  sock: /run/x.sock\n"),
			field: "api.sock", line: 5, msg: "unknown field (known: socket, mode, group, max_request_bytes, conversation_share, connection_share)"},
		{name: "key written inline", doc: withFile("    key: inline-secret-value\n"),
			field: "servers[0].key", line: 4, msg: "a key is never written in the configuration: use key_file or key_env"},
		{name: "bare-number duration", doc: withFile("    timeout: 5\n"),
			field: "servers[0].timeout", line: 4, msg: `"5" has no unit (use e.g. 5s)`},
		{name: "quoted bare-number duration", doc: withFile("dead_time: \"30\"\n"),
			field: "dead_time", line: 4, msg: `"30" has no unit (use e.g. 30s)`},
		{name: "malformed duration", doc: withFile("backoff: {initial: 5 sec}\n"),
			field: "backoff.initial", line: 4, msg: `"5 sec" is not a duration (use e.g. 5s, 1m30s)`},
		{name: "never where not allowed", doc: withFile("    timeout: never\n"),
			field: "servers[0].timeout", line: 4, msg: `"never" is not a duration`},
		{name: "negative duration", doc: withFile("dead_time: -1s\n"),
			field: "dead_time", line: 4, msg: "must be positive"},
		{name: "backoff initial above max", doc: withFile("backoff:\n  initial: 10s\n  max: 1s\n"),
			field: "backoff.initial", line: 5, msg: "10s is longer than backoff.max (1s)"},
		{name: "not an integer", doc: withFile("    max_in_flight: lots\n"),
			field: "servers[0].max_in_flight", line: 4, msg: `"lots" is not an integer`},
		{name: "too many connections", doc: withFile("    connections_per_server: 65\n"),
			field: "servers[0].connections_per_server", line: 4, msg: "must be from 1 to 64"},
		{name: "negative connections", doc: withFile("    connections_per_server: -1\n"),
			field: "servers[0].connections_per_server", line: 4, msg: "must be from 1 to 64"},
		{name: "not a bool", doc: withFile("    single_connect: maybe\n"),
			field: "servers[0].single_connect", line: 4, msg: `"maybe" is not true or false`},
		{name: "field given twice", doc: withFile("    timeout: 1s\n    timeout: 2s\n"),
			field: "servers[0].timeout", line: 5, msg: "given twice (first on line 4)"},
		{name: "servers not a list", doc: "servers: tac1\n",
			field: "servers", line: 1, msg: "want a list"},
		{name: "section not a mapping", doc: withFile("log: debug\n"),
			field: "log", line: 4, msg: "want a mapping of fields for log, not a value"},
		{name: "YAML syntax", doc: withFile("log:\n  level: [info\n"),
			field: "", line: 4, msg: "did not find expected ',' or ']'"},
		{name: "no servers", doc: "log: {level: info}\n",
			field: "servers", line: 0, msg: "at least one server is required"},
		{name: "missing key source", doc: srv(""),
			field: "servers[0]", line: 2, msg: "no key: set key_file or key_env"},
		{name: "both key sources", doc: withFile("    key_env: TACAGENT_TEST_KEY\n"),
			field: "servers[0].key_env", line: 4, msg: "key_file is set too; want exactly one of key_file and key_env"},
		{name: "key_env unset", doc: srv("    key_env: TACAGENT_TEST_UNSET\n"),
			field: "servers[0].key_env", line: 3, msg: "the environment variable named here is not set"},
		{name: "key_env empty", doc: srv("    key_env: TACAGENT_TEST_EMPTY\n"),
			setup: func(t *testing.T, doc string) string { t.Setenv("TACAGENT_TEST_EMPTY", ""); return doc },
			field: "servers[0].key_env", line: 3, msg: "the environment variable named here is empty"},
		{name: "key_env holding a key", doc: srv("    key_env: inline-secret-value\n"),
			field: "servers[0].key_env", line: 3, msg: "not an environment variable name"},
		{name: "key file missing", doc: srv("    key_file: /nonexistent/tacagent/tac1.key\n"),
			field: "servers[0].key_file", line: 3, msg: "cannot open the key file /nonexistent/tacagent/tac1.key: no such file"},
		{name: "key file relative", doc: srv("    key_file: tac1.key\n"),
			field: "servers[0].key_file", line: 3, msg: "must be an absolute path"},
		{name: "key file world-readable", doc: srv("    key_file: WORLD\n"),
			setup: func(t *testing.T, doc string) string {
				return strings.ReplaceAll(doc, "WORLD", keyFile(t, fileKey, 0o644))
			},
			field: "servers[0].key_file", line: 3, msg: "the key file has mode 0644: group or others may read it; chmod 600 "},
		{name: "key file empty", doc: srv("    key_file: EMPTY\n"),
			setup: func(t *testing.T, doc string) string {
				return strings.ReplaceAll(doc, "EMPTY", keyFile(t, "\n", 0o600))
			},
			field: "servers[0].key_file", line: 3, msg: "is empty"},
		{name: "short key", doc: srv("    key_file: SHORT\n"),
			setup: func(t *testing.T, doc string) string {
				return strings.ReplaceAll(doc, "SHORT", keyFile(t, "short-secret\n", 0o600))
			},
			field: "servers[0].key_file", line: 3, msg: "the key is 12 bytes, shorter than 16 (RFC 8907 section 10.5.1); use a longer key, or set allow_short_key: true"},
		{name: "unencrypted without allow", doc: srv("    unencrypted: true\n"),
			field: "servers[0].unencrypted", line: 3, msg: "unencrypted TACACS+ is refused unless allow_unencrypted: true is also set (RFC 8907 section 10.5.2)"},
		{name: "unencrypted with a key", doc: withFile("    unencrypted: true\n    allow_unencrypted: true\n"),
			field: "servers[0].unencrypted", line: 4, msg: "an unencrypted server takes no key: remove key_file and key_env"},
		{name: "bad address", doc: "servers:\n  - address: 127.0.0.1:49:49\n    key_file: KEYFILE\n",
			field: "servers[0].address", line: 2, msg: `"127.0.0.1:49:49" is not host:port (IPv6 as [::1]:49)`},
		{name: "bad host", doc: "servers:\n  - address: bad_host!:49\n    key_file: KEYFILE\n",
			field: "servers[0].address", line: 2, msg: `"bad_host!" is not an IP address or a host name`},
		{name: "bad port", doc: "servers:\n  - address: 127.0.0.1:70000\n    key_file: KEYFILE\n",
			field: "servers[0].address", line: 2, msg: "port 70000 is out of range (1-65535)"},
		{name: "port not a number", doc: "servers:\n  - address: \"127.0.0.1:tacacs\"\n    key_file: KEYFILE\n",
			field: "servers[0].address", line: 2, msg: `port "tacacs" is not a number`},
		{name: "bad source address", doc: withFile("    source_address: eth0\n"),
			field: "servers[0].source_address", line: 4, msg: `"eth0" is not an IP address`},
		{name: "duplicate server address", doc: withFile("  - address: 127.0.0.1:4949\n    key_env: TACAGENT_TEST_KEY\n"),
			field: "servers[1].address", line: 4, msg: "127.0.0.1:4949 is already the address of servers[0]"},
		{name: "duplicate server name", doc: "servers:\n  - name: a\n    address: 127.0.0.1\n    key_file: KEYFILE\n  - name: a\n    address: 127.0.0.2\n    key_file: KEYFILE\n",
			field: "servers[1].name", line: 5, msg: `"a" is already the name of servers[0]`},
		{name: "group names unknown server", doc: valid + "  - name: third\n    servers: [tac1, tac3]\n",
			field: "groups[2].servers[1]", line: 14, msg: `unknown server "tac3" (servers: tac1, tac2)`},
		{name: "server twice in a group", doc: valid + "  - name: third\n    servers:\n      - tac1\n      - 127.0.0.1:4949\n",
			field: "groups[2].servers[1]", line: 16, msg: `server "127.0.0.1:4949" is listed twice in group "third"`},
		{name: "empty group", doc: valid + "  - name: third\n    servers: []\n",
			field: "groups[2].servers", line: 14, msg: `group "third" has no servers`},
		{name: "group without a name", doc: valid + "  - servers: [tac1]\n",
			field: "groups[2].name", line: 13, msg: "a group needs a name"},
		{name: "duplicate group", doc: valid + "  - name: core\n    servers: [tac1]\n",
			field: "groups[2].name", line: 13, msg: `"core" is already the name of groups[0]`},
		{name: "api.mode world-writable", doc: withFile("api:\n  mode: \"0666\"\n"),
			field: "api.mode", line: 5, msg: "0666 is world-writable: every local user could call the API"},
		{name: "api.mode not octal", doc: withFile("api:\n  mode: \"0980\"\n"),
			field: "api.mode", line: 5, msg: `"0980" is not an octal mode (use e.g. "0660")`},
		{name: "api.mode beyond 0777", doc: withFile("api:\n  mode: \"04755\"\n"),
			field: "api.mode", line: 5, msg: "04755 has bits beyond 0777"},
		{name: "relative socket path", doc: withFile("api:\n  socket: run/tacagent.sock\n"),
			field: "api.socket", line: 5, msg: `"run/tacagent.sock" is not an absolute path`},
		{name: "socket path too long", doc: withFile("api:\n  socket: /" + strings.Repeat("s", 120) + "\n"),
			field: "api.socket", line: 5, msg: "longer than 107 bytes, the limit of a unix socket path"},
		{name: "bad api group", doc: withFile("api:\n  group: \"wheel users\"\n"),
			field: "api.group", line: 5, msg: `"wheel users" is not a group name`},
		{name: "bad log level", doc: withFile("log:\n  level: verbose\n"),
			field: "log.level", line: 5, msg: `unknown level "verbose" (want debug, info, warn, error)`},
		{name: "bad metrics address", doc: withFile("metrics:\n  address: localhost\n"),
			field: "metrics.address", line: 5, msg: `"localhost" is not host:port ("" disables the listener)`},
		{name: "stack entry with a bad control", doc: valid + "authentication:\n  stack:\n    - tacacs: core\n    - tacacs: backup\n      control: sometimes\n",
			field: "authentication.stack[1].control", line: 17, msg: `"sometimes"`},
		{name: "stack entry with an unknown field", doc: valid + "authentication:\n  stack:\n    - tacacs: core\n      contrl: required\n",
			field: "authentication.stack[0].contrl", line: 16, msg: "unknown field"},
		{name: "stack entry naming an unknown group", doc: valid + "authentication:\n  stack:\n    - tacacs: core\n    - tacacs: cor\n",
			field: "authentication.stack[1].tacacs", line: 16, msg: `unknown server group "cor"`},
		{name: "stack entry with a missing local file", doc: valid + "authentication:\n  stack:\n    - tacacs: core\n    - local: /nonexistent/local-users\n",
			field: "authentication.stack[1].local", line: 16, msg: "/nonexistent/local-users"},
		{name: "negative failure limit", doc: withFile("authentication:\n  failure_limit: {max: -1}\n"),
			field: "authentication.failure_limit.max", line: 5, msg: "must not be negative (0 disables the limit)"},
		{name: "authorization group unknown", doc: valid + "authorization:\n  group: cor\n",
			field: "authorization.group", line: 14, msg: `unknown server group "cor" (groups: core, backup)`},
		{name: "accounting group unknown", doc: withFile("accounting:\n  group: core\n"),
			field: "accounting.group", line: 5, msg: `unknown server group "core" (groups: default)`},
		{name: "second document", doc: withFile("---\nlog: {level: info}\n"),
			field: "", line: 4, msg: "a second YAML document"},
		{name: "empty file", doc: "# nothing\n",
			field: "", line: 0, msg: "the configuration is empty"},
		{name: "not a mapping", doc: "- servers\n",
			field: "", line: 1, msg: "want a mapping of fields for the configuration, not a list"},
	}
	seen := map[string]bool{}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			doc := tc.doc
			if tc.setup != nil {
				doc = tc.setup(t, doc)
			}
			c, err := parse(t, doc)
			if err == nil {
				t.Fatalf("Parse succeeded: %v", c)
			}
			if !errors.Is(err, tacplus.ErrConfig) {
				t.Errorf("error is not ErrConfig: %v", err)
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("no *FieldError in %v", err)
			}
			ps := Problems(err)
			if len(ps) != 1 {
				t.Fatalf("%d problems, want 1:\n%v", len(ps), err)
			}
			p := ps[0]
			if p.File != "tacagent.yaml" || p.Field != tc.field || p.Line != tc.line || !strings.Contains(p.Msg+errText(p.Err), tc.msg) {
				t.Errorf("got  %s:%d: field %q: %s\nwant %s:%d: field %q: ...%s...", p.File, p.Line, p.Field, p.Msg+errText(p.Err),
					"tacagent.yaml", tc.line, tc.field, tc.msg)
			}
			// The rendering is "FILE:LINE: FIELD: MSG", under the taxonomy's class.
			prefix := "tacagent.yaml"
			if tc.line > 0 {
				prefix += fmt.Sprintf(":%d", tc.line)
			}
			if tc.field != "" {
				prefix += ": " + tc.field
			}
			if want := tacplus.ErrConfig.Error() + ": " + prefix + ": "; !strings.HasPrefix(err.Error(), want) {
				t.Errorf("Error() = %q, want prefix %q", err.Error(), want)
			}
			noSecret(t, "error", err.Error())
			seen[tc.field] = true
		})
	}
	if len(seen) < 15 {
		t.Errorf("only %d distinct fields covered", len(seen))
	}
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return ": " + err.Error()
}

func TestKeyFileMissingWrapsCause(t *testing.T) {
	_, err := parse(t, "servers:\n  - address: 127.0.0.1\n    key_file: /nonexistent/k\n")
	if !errors.Is(err, fs.ErrNotExist) || !errors.Is(err, tacplus.ErrConfig) {
		t.Errorf("err = %v; want fs.ErrNotExist and ErrConfig", err)
	}
}

func TestAllProblemsAtOnce(t *testing.T) {
	doc := `servers:
  - address: 127.0.0.1:70000
    key_file: KEYFILE
    timeout: 5
  - address: 127.0.0.2
groups:
  - name: core
    servers: [nosuch]
api:
  mode: "0666"
log:
  level: loud
  colour: true
`
	_, err := parse(t, doc)
	want := []string{
		"tacagent.yaml:2: servers[0].address: port 70000 is out of range (1-65535)",
		`tacagent.yaml:4: servers[0].timeout: "5" has no unit (use e.g. 5s)`,
		"tacagent.yaml:5: servers[1]: no key: set key_file or key_env (or unencrypted: true with allow_unencrypted: true)",
		`tacagent.yaml:8: groups[0].servers[0]: unknown server "nosuch" (servers: 127.0.0.1:70000, 127.0.0.2:49)`,
		"tacagent.yaml:10: api.mode: 0666 is world-writable: every local user could call the API (use e.g. 0660 with api.group)",
		`tacagent.yaml:12: log.level: unknown level "loud" (want debug, info, warn, error)`,
		"tacagent.yaml:13: log.colour: unknown field (known: level, secret_commands)",
	}
	ps := Problems(err)
	var got []string
	for _, p := range ps {
		got = append(got, p.Error())
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if wantErr := "configuration error: 7 problems:\n" + strings.Join(want, "\n"); err.Error() != wantErr {
		t.Errorf("Error() =\n%s\nwant\n%s", err, wantErr)
	}
}

func TestExampleFileValidates(t *testing.T) {
	data, err := os.ReadFile("../examples/tacagent.yaml")
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	if !strings.Contains(text, "key_file: /etc/tacagent/tac1.key") || !strings.Contains(text, "key_env: TACAGENT_KEY_TAC2") {
		t.Fatal("the example no longer names its key sources as this test expects")
	}
	t.Setenv("TACAGENT_KEY_TAC2", envKey)
	text = strings.ReplaceAll(text, "/etc/tacagent/tac1.key", keyFile(t, fileKey+"\n", 0o600))
	c, err := Parse([]byte(text), "tacagent.yaml")
	if err != nil {
		t.Fatalf("the example does not validate: %v", err)
	}
	if len(c.Servers) != 2 || len(c.Groups) != 2 {
		t.Fatalf("servers %d, groups %d; the example should show two of each", len(c.Servers), len(c.Groups))
	}
	// The first server writes every field out at its default: it must decode to the defaults.
	got := c.Servers[0]
	want := defaultServer()
	want.Name, want.Address, want.KeyFile, want.key = got.Name, got.Address, got.KeyFile, got.key
	if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", want) {
		t.Errorf("servers[0] in the example is not at the defaults:\n got %+v\nwant %+v", got, want)
	}
	def := defaults()
	if c.DeadTime != def.DeadTime || c.Backoff != def.Backoff || c.Authentication.UserTimeout != def.Authentication.UserTimeout ||
		c.Authentication.FailureLimit != def.Authentication.FailureLimit || c.Metrics != def.Metrics ||
		c.API.Socket != def.API.Socket || c.API.Mode != def.API.Mode || c.API.MaxRequestBytes != def.API.MaxRequestBytes ||
		c.API.ConversationShare != def.API.ConversationShare || c.API.ConnectionShare != def.API.ConnectionShare ||
		c.Log.Level != def.Log.Level || !slices.Equal(c.Log.SecretCommands, def.Log.SecretCommands) || c.Authorization != def.Authorization {
		t.Errorf("a section of the example differs from its default: %+v", c)
	}
	if string(c.Servers[0].key.b) != fileKey || string(c.Servers[1].key.b) != envKey {
		t.Error("keys not loaded from the file (one newline trimmed) and the environment")
	}
}

// TestEveryFieldDocumented checks that each YAML field appears in the example and in docs/config.md.
func TestEveryFieldDocumented(t *testing.T) {
	example, err := os.ReadFile("../examples/tacagent.yaml")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile("../docs/config.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range fieldPaths(defaults()) {
		name := path[strings.LastIndex(path, ".")+1:]
		if !strings.Contains(string(example), name+":") {
			t.Errorf("examples/tacagent.yaml does not show %s", path)
		}
		if !strings.Contains(string(doc), "`"+path+"`") {
			t.Errorf("docs/config.md does not document `%s`", path)
		}
	}
}

// fieldPaths lists every field path of the schema ("servers.timeout", "api.mode", "authentication.stack").
func fieldPaths(c *Config) []string {
	var out []string
	var walk func(prefix string, t reflect.Type)
	walk = func(prefix string, t reflect.Type) {
		for _, f := range fields(t) {
			p := joinPath(prefix, f.name)
			out = append(out, p)
			ft := t.FieldByIndex(f.index).Type
			if ft.Kind() == reflect.Slice {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct && !reflect.PointerTo(ft).Implements(unmarshalerType) {
				walk(p, ft)
			}
		}
	}
	walk("", reflect.TypeOf(c).Elem())
	return out
}

func TestDurations(t *testing.T) {
	c := mustParse(t, valid+`dead_time: 1m30s
backoff: {initial: 100ms, max: 10s}
authentication:
  user_timeout: 30s
  failure_limit: {max: 0, window: 10m}
authorization: {timeout: 3s}
`)
	if c.DeadTime != 90*time.Second || c.Backoff.Initial != 100*time.Millisecond || c.Backoff.Max != 10*time.Second ||
		c.Authentication.UserTimeout != 30*time.Second || c.Authentication.FailureLimit != (FailureLimit{Max: 0, Window: 10 * time.Minute, BaseDelay: DefaultFailureBaseDelay,
		MaxDelay: DefaultFailureMaxDelay, MaxKeys: DefaultFailureMaxKeys}) ||
		c.Authorization.Timeout != 3*time.Second {
		t.Errorf("durations: %+v", c)
	}
	for _, tc := range []struct {
		text string
		want time.Duration
	}{{"never", -1}, {"-1s", -time.Second}, {"0s", DefaultIdleTimeout}, {"30s", 30 * time.Second}} {
		c := mustParse(t, "servers:\n  - address: 127.0.0.1\n    key_file: KEYFILE\n    idle_timeout: "+tc.text+"\n")
		if c.Servers[0].IdleTimeout != tc.want {
			t.Errorf("idle_timeout %s = %v, want %v", tc.text, c.Servers[0].IdleTimeout, tc.want)
		}
	}
}

func TestAddresses(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"192.0.2.10:49", "192.0.2.10:49"},
		{"192.0.2.10", "192.0.2.10:49"},
		{"tac.example.net", "tac.example.net:49"},
		{"tac.example.net:4949", "tac.example.net:4949"},
		{"[2001:db8::1]:4949", "[2001:db8::1]:4949"},
		{"[2001:db8::1]", "[2001:db8::1]:49"},
		{"2001:db8::1", "[2001:db8::1]:49"},
	} {
		got, msg := normalizeAddress(tc.in)
		if got != tc.want || msg != "" {
			t.Errorf("normalizeAddress(%q) = %q, %q; want %q", tc.in, got, msg, tc.want)
		}
	}
	for _, bad := range []string{"", "[tac.example.net]", "192.0.2.10:0", "192.0.2.10:", "a b:49", "[::1]:x", "1.2.3.4:5:6"} {
		if got, msg := normalizeAddress(bad); msg == "" {
			t.Errorf("normalizeAddress(%q) = %q, want an error", bad, got)
		}
	}
}

func TestGroupsDefaultAndByAddress(t *testing.T) {
	c := mustParse(t, "servers:\n  - address: 127.0.0.1:4949\n    key_file: KEYFILE\n  - address: 127.0.0.2\n    key_env: TACAGENT_TEST_KEY\n")
	if got := c.GroupNames(); len(got) != 1 || got[0] != DefaultGroup || c.DefaultGroupName() != DefaultGroup {
		t.Errorf("GroupNames() = %v", got)
	}
	if c.Servers[1].Name != "127.0.0.2:49" || c.Servers[1].Address != "127.0.0.2:49" {
		t.Errorf("unnamed server: name %q address %q", c.Servers[1].Name, c.Servers[1].Address)
	}
	// A group may name an unnamed server by its address, with or without the default port.
	c = mustParse(t, "servers:\n  - address: 127.0.0.1:4949\n    key_file: KEYFILE\n  - address: 127.0.0.2\n    key_env: TACAGENT_TEST_KEY\n"+
		"groups:\n  - name: g\n    servers: [127.0.0.2, \"127.0.0.1:4949\"]\n")
	ac, err := c.Agent()
	if err != nil {
		t.Fatal(err)
	}
	if len(ac.Groups) != 1 || strings.Join(ac.Groups[0].Servers, ",") != "127.0.0.2:49,127.0.0.1:4949" {
		t.Errorf("groups %+v", ac.Groups)
	}
}

func TestLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tacagent.yaml")
	if err := os.WriteFile(path, []byte(expand(t, valid+"log: {level: verbose}\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	ps := Problems(err)
	if len(ps) != 1 || ps[0].File != path || ps[0].Line != 13 || ps[0].Field != "log.level" {
		t.Fatalf("Load: %v", err)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.yaml")); !errors.Is(err, fs.ErrNotExist) || !errors.Is(err, tacplus.ErrConfig) {
		t.Errorf("Load(missing) = %v", err)
	}
	if err := os.WriteFile(path, []byte(expand(t, valid)), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path)
	if err != nil || c.Source() != path || c.Line("groups[1].servers[0]") != 12 || c.Line("servers[1].key_env") != 7 {
		t.Errorf("Load: %v, source %q, lines %d %d", err, c.Source(), c.Line("groups[1].servers[0]"), c.Line("servers[1].key_env"))
	}
}

func TestListenTACACS(t *testing.T) {
	c := mustParse(t, valid)
	if c.Listen.TACACS.Address != "" || c.Listen.TACACS.Key() != nil {
		t.Fatalf("the front end is not off by default: %+v", c.Listen.TACACS)
	}
	local := keyFile(t, "local-front-end-key-0123\n", 0o600)
	c = mustParse(t, valid+"listen:\n  tacacs:\n    address: 127.0.0.1:4949\n    key_file: "+local+"\n    max_clients: 8\n")
	l := c.Listen.TACACS
	if string(l.Key()) != "local-front-end-key-0123" || l.MaxClients != 8 || l.SessionShare != agentconfig.DefaultProxySessionShare ||
		l.IdleTimeout != agentconfig.DefaultProxyIdleTimeout {
		t.Fatalf("%+v", l)
	}
	noSecret(t, "String", c.String())
	for _, tt := range []struct{ doc, field, msg string }{
		{"    address: 0.0.0.0:49\n    key_file: " + local + "\n", "listen.tacacs.address", "not a loopback address"},
		{"    address: localhost:49\n    key_file: " + local + "\n", "listen.tacacs.address", "not an IP address"},
		{"    address: 127.0.0.1:49\n", "listen.tacacs", "no local key"},
		{"    address: 127.0.0.1:49\n    key_file: KEYFILE\n", "listen.tacacs.key_file", "the local key is the key of server tac1"},
		{"    address: 127.0.0.1:49\n    key_file: " + keyFile(t, "short\n", 0o600) + "\n", "listen.tacacs.key_file", "shorter than 16"},
		{"    address: 127.0.0.1:49\n    key_file: " + keyFile(t, "local-front-end-key-0123\n", 0o644) + "\n", "listen.tacacs.key_file", "or set allow_insecure_key_file: true"},
		{"    address: 127.0.0.1:49\n    key_file: " + local + "\n    max_clients: -1\n", "listen.tacacs.max_clients", "must be positive"},
	} {
		_, err := parse(t, valid+"listen:\n  tacacs:\n"+tt.doc)
		found := false
		for _, p := range Problems(err) {
			if p.Field == tt.field && strings.Contains(p.Error(), tt.msg) {
				found = true
			}
		}
		if !found {
			t.Errorf("%q: %v; want %s: %s", tt.doc, err, tt.field, tt.msg)
		}
		noSecret(t, "error", errText(err))
	}
	if _, err := parse(t, valid+"listen:\n  tacacs:\n    address: 0.0.0.0:49\n    allow_nonloopback: true\n    key_file: "+local+"\n"); err != nil {
		t.Errorf("allow_nonloopback: %v", err)
	}
}

func TestNSSSection(t *testing.T) {
	doc := func(nss string) string {
		return "servers:\n  - address: 127.0.0.1:4949\n    key_file: KEYFILE\nnss:\n" + nss
	}
	kf := keyFile(t, fileKey, 0o600)
	parse := func(s string) (*Config, error) {
		return Parse([]byte(strings.ReplaceAll(s, "KEYFILE", kf)), "t.yaml")
	}
	c, err := parse(doc(`  accounts:
    - {name: tacacs15, priv_lvl: "15", uid: 2015, gid: 2015, gecos: "TACACS+ %u", home: /home/%u, shell: /bin/bash}
    - {name: tacacs1, priv_lvl: "1-14", uid: 2001, gid: 2001, home: /home/tacacs1, shell: /bin/rbash}
  negative_ttl: 30s
`))
	if err != nil {
		t.Fatal(err)
	}
	nc := c.NSSCache()
	if nc == nil || len(nc.Templates) != 2 || nc.Templates[1].MinPriv != 1 || nc.Templates[1].MaxPriv != 14 ||
		nc.NegativeTTL != 30*time.Second || nc.PositiveTTL != DefaultNSSPositiveTTL || nc.RefreshAfter != DefaultNSSPositiveTTL/2 {
		t.Fatalf("NSSCache = %+v", nc)
	}
	if c, err := parse("servers:\n  - address: 127.0.0.1:4949\n    key_file: KEYFILE\n"); err != nil || c.NSSCache() != nil {
		t.Fatalf("no nss section: %v, %+v", err, c.NSSCache())
	}
	for _, tc := range []struct{ acct, field, msg string }{
		{`{name: root0, priv_lvl: "15", uid: 0, gid: 5, home: /root, shell: /bin/sh}`, "nss.accounts[0].uid", "0 (root) is refused"},
		{`{name: x, priv_lvl: "15", uid: 5, gid: 0, home: /h, shell: /bin/sh}`, "nss.accounts[0].gid", "refused"},
		{`{name: x, priv_lvl: "16", uid: 5, gid: 5, home: /h, shell: /bin/sh}`, "nss.accounts[0].priv_lvl", "not a level"},
		{`{name: x, priv_lvl: "9-3", uid: 5, gid: 5, home: /h, shell: /bin/sh}`, "nss.accounts[0].priv_lvl", "not a level"},
		{`{name: "a:b", priv_lvl: "1", uid: 5, gid: 5, home: /h, shell: /bin/sh}`, "nss.accounts[0].name", "not an account name"},
		{`{name: x, priv_lvl: "1", uid: 5, gid: 5, home: h, shell: /bin/sh}`, "nss.accounts[0].home", "not an absolute path"},
		{`{name: x, priv_lvl: "1", uid: 5, gid: 5, home: "/h:x", shell: /bin/sh}`, "nss.accounts[0].home", "not an absolute path"},
		{`{name: x, priv_lvl: "1", uid: 5, gid: 5, gecos: "a:b", home: /h, shell: /bin/sh}`, "nss.accounts[0].gecos", "':'"},
	} {
		_, err := parse(doc("  accounts:\n    - " + tc.acct + "\n"))
		var fe *FieldError
		if err == nil || !errors.As(err, &fe) || !strings.Contains(err.Error(), tc.field) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: %v, want %s: %s", tc.acct, err, tc.field, tc.msg)
		}
	}
}
