package chaos

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	zlog "github.com/rs/zerolog/log"
	"go.uber.org/goleak"
)

// Flags. -chaos.duration is the load phase of each scenario, and the whole of TestSoak.
var (
	flagDuration = flag.Duration("chaos.duration", 4*time.Second, "load phase of each scenario; the whole soak for TestSoak")
	flagWorkers  = flag.Int("chaos.workers", 6, "concurrent callers per front end (Go API, local API)")
	flagSummary  = flag.String("chaos.summary", "", "also write the summary table to this file")
	flagKeep     = flag.Bool("chaos.keep", false, "keep each scenario's directory (logs, configs, accounting logs)")
	flagLogLevel = flag.String("chaos.loglevel", "warn", "log level of the agents under test (debug, info, warn, error)")
)

// bins are the helper binaries TestMain builds once per test binary.
var bins struct {
	tacagent   string // built with -race: a data race in the daemon fails the scenario
	testserver string
	tacquito   string
}

// toxiproxyLeaks ignores the goroutines Toxiproxy v2.5.0 leaks and no API of it can stop. When a link's
// writer stops on a write error (the agent reset or closed its end, or limit_data or reset_peer closed the
// link), it stops draining the link's channel chain: the reader (ToxicLink.read, blocked in
// ChanWriter.Write) and the toxics before it (ToxicStub.Run, blocked sending to the next stub) wait forever
// on channel sends. Proxy.Stop closes the connections but cannot unblock a channel send. The agent's own
// goroutines are checked without these (and without any other Toxiproxy frame, ownGoroutines).
var toxiproxyLeaks = []goleak.Option{
	goleak.IgnoreAnyFunction("github.com/Shopify/toxiproxy/v2.(*ToxicLink).read"),
	goleak.IgnoreAnyFunction("github.com/Shopify/toxiproxy/v2/toxics.(*ToxicStub).Run"),
}

// summaries collects one row per scenario for the table TestMain prints at the end.
var summaries struct {
	mu   sync.Mutex
	rows []Summary
}

func addSummary(s Summary) {
	summaries.mu.Lock()
	defer summaries.mu.Unlock()
	summaries.rows = append(summaries.rows, s)
}

func TestMain(m *testing.M) {
	flag.Parse()
	// Toxiproxy's bandwidth toxic logs through zerolog's global logger (at trace level, to stderr); this
	// process has nothing else on it.
	zlog.Logger = zerolog.Nop()
	dir, err := os.MkdirTemp("", "chaos-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	code := 2
	func() {
		defer os.RemoveAll(dir)
		if err := buildBinaries(dir); err != nil {
			fmt.Fprintln(os.Stderr, "chaos: building helper binaries:", err)
			return
		}
		code = m.Run()
	}()
	summaries.mu.Lock()
	rows := summaries.rows
	summaries.mu.Unlock()
	if len(rows) > 0 {
		fmt.Println("\nchaos summary (latency is per request, as its caller saw it):")
		_ = WriteTable(os.Stdout, rows)
		if *flagSummary != "" {
			if f, err := os.Create(*flagSummary); err == nil {
				_ = WriteTable(f, rows)
				f.Close()
			}
		}
	}
	if code == 0 {
		if err := goleak.Find(toxiproxyLeaks...); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// buildBinaries builds the three helpers at once (each `go build` waits mostly on its link step; run
// one after the other they took about 12 s of the package's time budget on a loaded 2-CPU machine).
func buildBinaries(dir string) error {
	bins.tacagent = filepath.Join(dir, "tacagent")
	bins.testserver = filepath.Join(dir, "tacplus-testserver")
	bins.tacquito = filepath.Join(dir, "tacquito-server")
	builds := []struct {
		out  string
		args []string
	}{
		{bins.tacagent, []string{"-race", "../cmd/tacagent"}},
		{bins.testserver, []string{"../cmd/tacplus-testserver"}},
		{bins.tacquito, []string{"./cmd/tacquito-server"}},
	}
	errs := make([]error, len(builds))
	var wg sync.WaitGroup
	for i, b := range builds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.Command("go", append([]string{"build", "-o", b.out}, b.args...)...)
			cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
			if err := cmd.Run(); err != nil {
				errs[i] = fmt.Errorf("go build %v: %w", b.args, err)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
