package main

import (
	"bytes"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// tableFlags lists the flags a command's table entry registers (the flags cobra must know).
func tableFlags(c command) []string {
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	c.flags(&globals{}, fs)
	var names []string
	fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
	sort.Strings(names)
	return names
}

// TestManPagesNameEveryFlag: `tacagent gendocs` (what make man and make deb run) writes a page per
// command with each of the command's flags and the global ones, from the same flag sets the commands parse.
func TestManPagesNameEveryFlag(t *testing.T) {
	dir := t.TempDir()
	if code, out, errOut := runCLI(t, "", "gendocs", dir); code != exitOK {
		t.Fatalf("gendocs: exit %d\n%s%s", code, out, errOut)
	}
	root, err := os.ReadFile(filepath.Join(dir, "man8", "tacagent.8"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range commands {
		if !bytes.Contains(root, []byte(`\fBtacagent-`+c.name+`(8)\fP`)) {
			t.Errorf("tacagent(8) does not refer to tacagent-%s(8)", c.name)
		}
		page, err := os.ReadFile(filepath.Join(dir, "man8", "tacagent-"+c.name+".8"))
		if err != nil {
			t.Error(err)
			continue
		}
		want := append(tableFlags(c), "socket", "log-level", "daemon-uid")
		for _, f := range want {
			// The flag's name in bold, its dashes escaped for roff or not.
			if !bytes.Contains(page, []byte(`\fB--`+f)) && !bytes.Contains(page, []byte(`\fB\-\-`+strings.ReplaceAll(f, "-", `\-`))) {
				t.Errorf("tacagent-%s(8) does not document --%s", c.name, f)
			}
		}
	}
	for _, f := range []string{"tacagent.bash", "_tacagent"} {
		if b, err := os.ReadFile(filepath.Join(dir, "completion", f)); err != nil || !bytes.Contains(b, []byte("__complete")) {
			t.Errorf("completion script %s: %v, %d bytes", f, err, len(b))
		}
	}
}

// TestBashCompletion drives the generated bash completion in a real bash, as a user pressing TAB: the
// script asks the binary (`tacagent __complete ...`), so this checks the script and the command tree
// together.
func TestBashCompletion(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	// The script needs the bash-completion package's functions, as where it is installed
	// (/usr/share/bash-completion/completions is loaded by that package).
	const bashCompletion = "/usr/share/bash-completion/bash_completion"
	if _, err := os.Stat(bashCompletion); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI needs the bash-completion package (.ci/run): %v", err)
		}
		t.Skipf("the bash-completion package is not installed: %v", err)
	}
	dir := t.TempDir()
	if code, out, errOut := runCLI(t, "", "gendocs", dir); code != exitOK {
		t.Fatalf("gendocs: exit %d\n%s%s", code, out, errOut)
	}
	complete := func(line string) []string {
		t.Helper()
		// COMP_* as readline sets them for a TAB at the end of line.
		script := `source /usr/share/bash-completion/bash_completion
source "$1"
COMP_LINE=$2; COMP_POINT=${#COMP_LINE}; COMP_TYPE=9; COMP_KEY=9
read -r -a COMP_WORDS <<<"$COMP_LINE"
[[ $COMP_LINE == *" " ]] && COMP_WORDS+=("")
COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
__start_tacagent tacagent "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
printf '%s\n' "${COMPREPLY[@]}"`
		cmd := exec.Command(bash, "--norc", "--noprofile", "-c", script, "bash", filepath.Join(dir, "completion", "tacagent.bash"), line)
		cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(binary)+":"+os.Getenv("PATH"))
		var o, e bytes.Buffer
		cmd.Stdout, cmd.Stderr = &o, &e
		if err := cmd.Run(); err != nil {
			t.Fatalf("completing %q: %v\n%s", line, err, e.String())
		}
		return strings.Fields(o.String())
	}
	has := func(line string, want ...string) {
		t.Helper()
		got := complete(line)
		for _, w := range want {
			found := false
			for _, g := range got {
				found = found || g == w
			}
			if !found {
				t.Errorf("completing %q: %q not among %q", line, w, got)
			}
		}
	}
	has("tacagent ", "run", "demo", "login", "authorize", "account", "status", "audisp", "version")
	has("tacagent st", "status")
	has("tacagent account ", "start", "stop", "watchdog", "update")
	has("tacagent authorize --pr", "--priv-lvl")
	has("tacagent status --", "--json", "--socket", "--log-level", "--daemon-uid")
	has("tacagent --socket /tmp/x sta", "status")
	if got := complete("tacagent gend"); len(got) != 0 {
		t.Errorf("the hidden gendocs is offered: %q", got)
	}
}

// TestZshCompletionLoads: the zsh script is valid zsh and defines the completion function once compinit
// has run (zsh loads it from a directory of $fpath, as the package installs it).
func TestZshCompletionLoads(t *testing.T) {
	zsh, err := exec.LookPath("zsh")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI needs zsh (.ci/run)")
		}
		t.Skip("zsh is not installed")
	}
	dir := t.TempDir()
	if code, out, errOut := runCLI(t, "", "gendocs", dir); code != exitOK {
		t.Fatalf("gendocs: exit %d\n%s%s", code, out, errOut)
	}
	script := `fpath=("$1" $fpath); autoload -Uz compinit && compinit -u -D && autoload -Uz _tacagent && whence -w _tacagent && print -r -- ${_comps[tacagent]}`
	out, err := exec.Command(zsh, "-f", "-c", script, "zsh", filepath.Join(dir, "completion")).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "_tacagent: function") || !strings.HasSuffix(strings.TrimSpace(string(out)), "_tacagent") {
		t.Errorf("zsh: %v\n%s", err, out)
	}
}
