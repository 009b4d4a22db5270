package spool

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/tacagent/tacagent/tacplus"
)

// keys lists a bucket's sequence numbers in a closed spool file.
func keys(t *testing.T, path string, bucket []byte) []uint64 {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var out []uint64
	_ = db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucket).ForEach(func(k, _ []byte) error {
			seq, _ := keySeq(k)
			out = append(out, seq)
			return nil
		})
	})
	return out
}

func TestDeliveredAndDeleted(t *testing.T) {
	f := newFixture(t, up, nil)
	tk := f.append("1", tacplus.AcctFlagStart, 0)
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	o, ok := tk.Wait(ctx)
	if !ok || !o.Delivered || o.Err != nil || o.Server != "test:49" {
		t.Fatalf("outcome %+v ok=%v", o, ok)
	}
	eventually(t, "empty", func() bool { return f.depth() == 0 })
	path := f.cfg.Path
	f.close()
	if k := keys(t, path, bucketRecords); len(k) != 0 {
		t.Errorf("records left in the file: %v", k)
	}
	if k := keys(t, path, bucketSent); len(k) != 0 {
		t.Errorf("sent marks left: %v", k)
	}
	if got := counter(f.m.Spool.Delivered); got != 1 {
		t.Errorf("delivered %v", got)
	}
	if got := counter(f.m.SpoolReplayed); got != 0 {
		t.Errorf("replayed %v, want 0 (delivered at its first attempt)", got)
	}
}

// TestOrderWithinTask: records accepted during an outage are delivered, once the server is back, in
// acceptance order within each task, with never two records of one task in flight.
func TestOrderWithinTask(t *testing.T) {
	f := newFixture(t, down, nil)
	const tasks, per = 40, 5
	for i := range per {
		for j := range tasks {
			flags := tacplus.AcctFlagWatchdog
			switch i {
			case 0:
				flags = tacplus.AcctFlagStart
			case per - 1:
				flags = tacplus.AcctFlagStop
			}
			f.append(fmt.Sprint("task-", j), flags, i)
		}
	}
	eventually(t, "in an outage", func() bool { return f.sp.Stats().Outage })
	f.srv.set(up)
	eventually(t, "all delivered", func() bool { return f.depth() == 0 })
	last := map[string]uint64{}
	for _, r := range f.srv.deliveries() {
		if r.Seq <= last[r.Task()] {
			t.Fatalf("task %s: seq %d delivered after %d", r.Task(), r.Seq, last[r.Task()])
		}
		last[r.Task()] = r.Seq
	}
	if len(f.srv.deliveries()) != tasks*per {
		t.Errorf("%d deliveries, want %d", len(f.srv.deliveries()), tasks*per)
	}
	if f.srv.overlap {
		t.Error("two records of one task were in flight at once")
	}
	if got := counter(f.m.SpoolReplayed); got != tasks*per {
		t.Errorf("replayed %v, want %d", got, tasks*per)
	}
}

// TestOutageAnswersAtOnce: during an outage a caller is answered as soon as its record is durable, with
// the outage's error, and nothing is sent for it until the backoff ends.
func TestOutageAnswersAtOnce(t *testing.T) {
	f := newFixture(t, down, func(c *Config) { c.RetryInitial, c.RetryMax = time.Hour, time.Hour })
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	o, _ := f.append("a", tacplus.AcctFlagStart, 0).Wait(ctx)
	if o.Delivered || !errors.Is(o.Err, tacplus.ErrUnreachable) {
		t.Fatalf("first: %+v", o)
	}
	o, _ = f.append("b", tacplus.AcctFlagStart, 0).Wait(ctx)
	if o.Delivered || !errors.Is(o.Err, tacplus.ErrUnreachable) {
		t.Fatalf("second: %+v", o)
	}
	f.srv.mu.Lock()
	n := len(f.srv.attempts)
	f.srv.mu.Unlock()
	if n != 1 {
		t.Errorf("%d records attempted during the outage's backoff, want 1", n)
	}
	if st := f.sp.Stats(); st.Depth != 2 || st.Oldest.IsZero() || !st.Outage {
		t.Errorf("stats %+v", st)
	}
}

// TestReplayAfterReopen: records left in the file are replayed by the next Open.
func TestReplayAfterReopen(t *testing.T) {
	f := newFixture(t, down, nil)
	for i := range 200 {
		f.append(fmt.Sprint("t", i%7), tacplus.AcctFlagWatchdog, i)
	}
	f.srv.set(down)
	path := f.cfg.Path
	f.close()
	if k := keys(t, path, bucketRecords); len(k) != 200 {
		t.Fatalf("%d records in the file, want 200", len(k))
	}
	f.srv.set(up)
	f.open()
	if f.depth() == 0 && len(f.srv.deliveries()) == 0 {
		t.Fatal("nothing loaded")
	}
	eventually(t, "replayed", func() bool { return f.depth() == 0 })
	if n := len(f.srv.deliveries()); n != 200 {
		t.Errorf("%d deliveries, want 200", n)
	}
	if got := counter(f.m.SpoolReplayed); got != 200 {
		t.Errorf("replayed %v", got)
	}
}

// TestCrashBetweenSendAndDelete: the file as a crash would leave it, after the server took records and
// before their deletes were committed. Opening that image delivers them again, counted as duplicates.
func TestCrashBetweenSendAndDelete(t *testing.T) {
	f := newFixture(t, up, nil)
	hold := make(chan struct{})
	f.srv.mu.Lock()
	f.srv.hold = hold
	f.srv.mu.Unlock()
	const n = 20
	for i := range n {
		f.append(fmt.Sprint("c", i), tacplus.AcctFlagStart, i)
	}
	eventually(t, "every record taken by the server", func() bool { return len(f.srv.deliveries()) == n })
	// The owner commits nothing while every attempt is held: copy the file now (the crash image).
	image := filepath.Join(t.TempDir(), "crash.db")
	copyFile(t, f.cfg.Path, image)
	close(hold)
	eventually(t, "deleted", func() bool { return f.depth() == 0 })
	f.close()

	f.srv.mu.Lock()
	f.srv.hold = nil
	f.srv.mu.Unlock()
	if k := keys(t, image, bucketSent); len(k) != n {
		t.Fatalf("%d sent marks in the crash image, want %d", len(k), n)
	}
	f.cfg.Path = image
	f.open()
	eventually(t, "replayed", func() bool { return f.depth() == 0 })
	if got := counter(f.m.Spool.Duplicates); got != n {
		t.Errorf("duplicates counted %v, want %d", got, n)
	}
	f.srv.mu.Lock()
	defer f.srv.mu.Unlock()
	for seq, c := range f.srv.delivered {
		if c != 2 {
			t.Errorf("seq %d delivered %d times, want 2 (at least once: the duplicate is expected)", seq, c)
		}
	}
	if !strings.Contains(f.log.String(), `"possibly_sent":20`) {
		t.Errorf("no replay log line with possibly_sent: %s", f.log.String())
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestDeadLetter: a record the servers answer ERROR to, while they take the others, goes to the
// dead-letter bucket after DeadLetterAfter strikes: counted, logged, kept in the file, never dropped.
func TestDeadLetter(t *testing.T) {
	poison := func(r *Record, _ int) error {
		if r.Task() == "poison" {
			return &tacplus.Error{Class: tacplus.ErrServerError, Msg: "the server answered ERROR: malformed record"}
		}
		return nil
	}
	f := newFixture(t, poison, func(c *Config) { c.DeadLetterAfter = 3 })
	f.append("poison", tacplus.AcctFlagStart, 0)
	behind := f.append("poison", tacplus.AcctFlagStop, 1) // the same task: waits behind it
	// Good records in between prove the servers work.
	for i := 0; counter(f.m.Spool.DeadLetters) < 2; i++ {
		if i > 100000 {
			t.Fatal("never dead-lettered")
		}
		f.append(fmt.Sprint("good", i), tacplus.AcctFlagStart, i)
		time.Sleep(time.Millisecond)
	}
	// The STOP behind it is a poison too (same task), and goes the same way, after the START.
	eventually(t, "both dead letters counted in stats", func() bool { return f.sp.Stats().DeadLetters == 2 })
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	if o, _ := behind.Wait(ctx); o.Delivered {
		t.Errorf("behind: %+v", o)
	}
	if !strings.Contains(f.log.String(), "dead-letter bucket") || strings.Contains(f.log.String(), "show run") {
		t.Errorf("log: want the dead letter, never the arguments: %s", f.log.String())
	}
	path := f.cfg.Path
	f.close()
	dead := keys(t, path, bucketDead)
	if len(dead) != 2 || dead[0] != 1 || dead[1] != 2 {
		t.Errorf("dead bucket %v, want [1 2]", dead)
	}
	if slices.Contains(keys(t, path, bucketRecords), 1) {
		t.Error("the dead letter is still among the records")
	}
}

// TestErrorRetriedWithBackoff: ERROR is retried; with no other record taken in between it never becomes
// a dead letter (the server may be the one that is broken).
func TestErrorRetriedWithBackoff(t *testing.T) {
	flaky := func(_ *Record, attempt int) error {
		if attempt <= 6 {
			return &tacplus.Error{Class: tacplus.ErrServerError, Msg: "ERROR"}
		}
		return nil
	}
	f := newFixture(t, flaky, func(c *Config) {
		c.DeadLetterAfter = 2
		c.RetryInitial = time.Millisecond
		c.RetryMax = 4 * time.Millisecond
	})
	start := time.Now()
	f.append("x", tacplus.AcctFlagStart, 0)
	eventually(t, "delivered", func() bool { return len(f.srv.deliveries()) == 1 })
	// 6 backoffs of 1, 2, 4, 4, 4, 4 ms at least.
	if el := time.Since(start); el < 19*time.Millisecond {
		t.Errorf("delivered after %s: no backoff", el)
	}
	if got := counter(f.m.Spool.Retries); got != 6 {
		t.Errorf("retries %v", got)
	}
	if got := counter(f.m.Spool.DeadLetters); got != 0 {
		t.Errorf("dead letters %v", got)
	}
}

// TestCap: past max_records the oldest records are dropped, counted and logged.
func TestCap(t *testing.T) {
	f := newFixture(t, down, func(c *Config) { c.MaxRecords = 10; c.RetryInitial, c.RetryMax = time.Hour, time.Hour })
	for i := range 25 {
		f.append(fmt.Sprint("t", i), tacplus.AcctFlagStart, i)
	}
	eventually(t, "10 left", func() bool { return f.depth() == 10 })
	if got := counter(f.m.SpoolDropped); got != 15 {
		t.Errorf("dropped %v", got)
	}
	if !strings.Contains(f.log.String(), "spool full") {
		t.Errorf("no log of the drop")
	}
	path := f.cfg.Path
	f.close()
	k := keys(t, path, bucketRecords)
	if len(k) != 10 || k[0] != 16 || k[9] != 25 {
		t.Errorf("kept %v, want 16..25", k)
	}
}

// TestCapBytes: the byte cap too.
func TestCapBytes(t *testing.T) {
	var size int64
	{
		v, err := encodeRecord(nil, &Record{Req: record("t00", tacplus.AcctFlagStart, 0)})
		if err != nil {
			t.Fatal(err)
		}
		size = int64(len(v) + 8)
	}
	f := newFixture(t, down, func(c *Config) { c.MaxBytes = 5 * size; c.RetryInitial, c.RetryMax = time.Hour, time.Hour })
	for i := range 12 {
		f.append(fmt.Sprintf("t%02d", i), tacplus.AcctFlagStart, i%10)
	}
	if st := f.sp.Stats(); st.Depth != 5 || st.Bytes > 5*size {
		t.Errorf("stats %+v, want 5 records of at most %d bytes", st, 5*size)
	}
}

func TestCorruptFileMovedAside(t *testing.T) {
	for _, c := range []struct {
		name string
		make func(t *testing.T, path string)
	}{
		{"garbage", func(t *testing.T, path string) {
			if err := os.WriteFile(path, []byte(strings.Repeat("not a bbolt file ", 1000)), 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{"foreign bbolt", func(t *testing.T, path string) {
			db, err := bolt.Open(path, 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			_ = db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("someone else")); return err })
			db.Close()
		}},
		{"truncated spool", func(t *testing.T, path string) {
			f := newFixture(t, down, func(c *Config) { c.Path = path })
			for i := range 50 {
				f.append(fmt.Sprint("t", i), tacplus.AcctFlagStart, i)
			}
			f.close()
			if err := os.Truncate(path, 4096+100); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "spool.db")
			c.make(t, path)
			f := newFixture(t, up, func(cfg *Config) { cfg.Path = path })
			if !strings.Contains(f.log.String(), "moved aside") {
				t.Fatalf("no log of the move: %s", f.log.String())
			}
			aside, _ := filepath.Glob(path + ".corrupt-*")
			if len(aside) != 1 {
				t.Errorf("moved files %v", aside)
			}
			f.append("fresh", tacplus.AcctFlagStart, 0)
			eventually(t, "the fresh spool delivers", func() bool { return len(f.srv.deliveries()) == 1 })
		})
	}
}

// TestLockedByAnother: a second spool on the same file fails fast with ErrLocked, not a hang.
func TestLockedByAnother(t *testing.T) {
	f := newFixture(t, up, nil)
	cfg := f.cfg
	cfg.LockTimeout = 100 * time.Millisecond
	start := time.Now()
	_, err := Open(cfg)
	if !errors.Is(err, ErrLocked) || !errors.Is(err, tacplus.ErrConfig) || !strings.Contains(err.Error(), "another tacagent") {
		t.Fatalf("err %v", err)
	}
	if el := time.Since(start); el > 10*time.Second {
		t.Errorf("took %s", el)
	}
}

func TestUnwritableDirectory(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Open(Config{Path: filepath.Join(file, "spool.db"), Send: newServer(up).send})
	if !errors.Is(err, tacplus.ErrConfig) || !strings.Contains(err.Error(), "accounting.spool.path") {
		t.Fatalf("err %v", err)
	}
}

func TestRefusesMalformed(t *testing.T) {
	f := newFixture(t, up, nil)
	req := record("x", tacplus.AcctFlagStart, 0)
	req.Args = []string{"service=shell"} // no task_id (RFC 8907 section 8.3)
	if _, err := f.sp.Append(context.Background(), "", req); !errors.Is(err, tacplus.ErrConfig) {
		t.Fatalf("err %v", err)
	}
	if f.depth() != 0 {
		t.Error("kept")
	}
}

// TestConcurrentAppenders: many callers at once; every record delivered exactly once and the commits
// shared (group commit: fewer commits than records).
func TestConcurrentAppenders(t *testing.T) {
	f := newFixture(t, up, nil)
	const callers, each = 64, 50
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for c := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), deadline)
			defer cancel()
			for i := range each {
				if _, err := f.sp.Append(ctx, "", record(fmt.Sprint("c", c), tacplus.AcctFlagWatchdog, i)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	eventually(t, "all delivered", func() bool { return f.depth() == 0 && len(f.srv.deliveries()) == callers*each })
	f.srv.mu.Lock()
	for seq, n := range f.srv.delivered {
		if n != 1 {
			t.Errorf("seq %d delivered %d times", seq, n)
		}
	}
	f.srv.mu.Unlock()
	if got := counter(f.m.Spool.Appended); got != callers*each {
		t.Errorf("appended %v", got)
	}
	if f.srv.overlap {
		t.Error("two records of one task in flight at once")
	}
}

// TestCloseKeepsUndelivered: Close with deliveries held cancels them at its deadline; they stay.
func TestCloseKeepsUndelivered(t *testing.T) {
	f := newFixture(t, down, func(c *Config) { c.RetryInitial, c.RetryMax = time.Hour, time.Hour })
	for i := range 5 {
		f.append(fmt.Sprint("t", i), tacplus.AcctFlagStart, i)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	sp := f.sp
	f.sp = nil
	if err := sp.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := sp.Append(context.Background(), "", record("late", tacplus.AcctFlagStart, 0)); !errors.Is(err, ErrClosed) {
		t.Errorf("append after close: %v", err)
	}
	if k := keys(t, f.cfg.Path, bucketRecords); len(k) != 5 {
		t.Errorf("%d records kept", len(k))
	}
}

// TestFreshRecordAheadOfBacklog: while a backlog replays, a new record's caller waits for one attempt of
// its own, not for the backlog (tasks are independent; within a task the order stays).
func TestFreshRecordAheadOfBacklog(t *testing.T) {
	f := newFixture(t, down, func(c *Config) { c.Senders = 1 })
	for i := range 300 {
		f.append(fmt.Sprint("old", i), tacplus.AcctFlagStart, i)
	}
	f.close()
	gate := make(chan struct{}, 1000)
	f.srv.set(func(*Record, int) error { <-gate; return nil })
	f.open()
	gate <- struct{}{} // one backlog record goes through; the rest wait for the gate
	tk := f.append("new", tacplus.AcctFlagStart, 0)
	for range 2 {
		gate <- struct{}{} // at most the record in flight, then the new one
	}
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	o, ok := tk.Wait(ctx)
	if !ok || !o.Delivered {
		t.Fatalf("new record: %+v", o)
	}
	if n := len(f.srv.deliveries()); n > 3 {
		t.Errorf("the new record went out after %d backlog records", n-1)
	}
	close(gate)
	eventually(t, "the backlog delivered", func() bool { return f.depth() == 0 })
}

// TestUnsafePathsRefused: a symlink in place of the file, a group-writable file or directory.
func TestUnsafePathsRefused(t *testing.T) {
	send := newServer(up).send
	dir := t.TempDir()
	target := filepath.Join(dir, "elsewhere.db")
	if err := os.WriteFile(target, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link.db")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	loose := filepath.Join(dir, "loose.db")
	if err := os.WriteFile(loose, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(loose, 0o666); err != nil {
		t.Fatal(err)
	}
	open := filepath.Join(t.TempDir(), "open")
	if err := os.Mkdir(open, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{link, loose, filepath.Join(open, "spool.db")} {
		if _, err := Open(Config{Path: path, Send: send, LockTimeout: 100 * time.Millisecond}); !errors.Is(err, tacplus.ErrConfig) {
			t.Errorf("%s: err %v", path, err)
		}
	}
}
