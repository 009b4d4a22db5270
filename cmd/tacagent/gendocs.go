package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

// gendocsCommand is the hidden `tacagent gendocs DIR`: it writes tacagent(8) and tacagent-COMMAND(8)
// (DIR/man8/) and
// the bash and zsh completion scripts (DIR/completion/tacagent.bash, DIR/completion/_tacagent) from
// the command tree, so that they cannot disagree with the flags the binary parses. `make man` and
// `make deb` run it. SOURCE_DATE_EPOCH, when set, dates the man page (reproducible builds).
func gendocsCommand(root *cobra.Command) *cobra.Command {
	return &cobra.Command{
		Use:    "gendocs DIR",
		Short:  "write the man page and the shell completion scripts into DIR",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			return gendocs(root, args[0])
		},
	}
}

func gendocs(root *cobra.Command, dir string) error {
	date := time.Now().UTC()
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		var sec int64
		if _, err := fmt.Sscan(s, &sec); err != nil {
			return fmt.Errorf("SOURCE_DATE_EPOCH %q: %w", s, err)
		}
		date = time.Unix(sec, 0).UTC()
	}
	man := filepath.Join(dir, "man8")
	comp := filepath.Join(dir, "completion")
	for _, d := range []string{man, comp} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	// tacagent(8), and tacagent-COMMAND(8) for each command, with its flags and the global ones.
	hdr := &doc.GenManHeader{Title: "TACAGENT", Section: "8", Date: &date, Source: "tacagent " + version,
		Manual: "System Manager's Manual"}
	if err := doc.GenManTree(root, hdr, man); err != nil {
		return err
	}
	for name, gen := range map[string]func(f *os.File) error{
		"tacagent.bash": func(f *os.File) error { return root.GenBashCompletionV2(f, true) },
		"_tacagent":     func(f *os.File) error { return root.GenZshCompletion(f) },
	} {
		f, err := os.Create(filepath.Join(comp, name))
		if err != nil {
			return err
		}
		err = gen(f)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	return nil
}
