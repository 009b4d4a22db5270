package spool

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	bolt "go.etcd.io/bbolt"

	"github.com/tacagent/tacagent/tacplus"
)

// benchCallers is the number of concurrent callers: a busy device's PAM sessions, bash commands and
// audit events at once.
const benchCallers = 256

// BenchmarkDurableAppend measures durable records per second and the p99 of the caller's acknowledgement
// (Append's return: committed and fsynced) with benchCallers callers, against a baseline in the same run:
// bbolt with one record per transaction (one fsync per record), the way a naive spool writes.
//
//	go test -run XXX -bench DurableAppend -benchtime 20000x ./spool
func BenchmarkDurableAppend(b *testing.B) {
	b.Run("baseline=bbolt-tx-per-record", func(b *testing.B) {
		db, err := bolt.Open(filepath.Join(b.TempDir(), "raw.db"), 0o600, nil)
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		if err := db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket(bucketRecords); return err }); err != nil {
			b.Fatal(err)
		}
		v, _ := encodeRecord(nil, &Record{Accepted: time.Now(), Req: record("1", tacplus.AcctFlagStart, 0)})
		runCallers(b, func(context.Context, int) error {
			return db.Update(func(tx *bolt.Tx) error {
				bk := tx.Bucket(bucketRecords)
				seq, _ := bk.NextSequence()
				return bk.Put(seqKey(seq), v)
			})
		})
	})
	for _, c := range []struct {
		name   string
		decide func(*Record, int) error
	}{
		{"spool/servers-down", down}, // appends only: the spool fills
		{"spool/delivered", up},      // appends, deliveries and deletes share the commits
	} {
		b.Run(c.name, func(b *testing.B) {
			srv := newServer(c.decide)
			sp, err := Open(Config{Path: filepath.Join(b.TempDir(), "spool.db"), Send: srv.send, Log: zerolog.Nop(),
				MaxRecords: -1, MaxBytes: -1, RetryInitial: time.Hour, RetryMax: time.Hour})
			if err != nil {
				b.Fatal(err)
			}
			defer sp.Close(context.Background())
			runCallers(b, func(ctx context.Context, i int) error {
				_, err := sp.Append(ctx, "", record(fmt.Sprint("task", i%1024), tacplus.AcctFlagWatchdog, i))
				return err
			})
		})
	}
}

// runCallers runs b.N calls of op spread over benchCallers goroutines and reports records/s and the
// latency percentiles of one call.
func runCallers(b *testing.B, op func(ctx context.Context, i int) error) {
	ctx := context.Background()
	lat := make([][]time.Duration, benchCallers)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	b.ResetTimer()
	start := time.Now()
	for c := range benchCallers {
		n := b.N / benchCallers
		if c < b.N%benchCallers {
			n++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := make([]time.Duration, 0, n)
			for i := range n {
				t0 := time.Now()
				if err := op(ctx, c*n+i); err != nil {
					mu.Lock()
					firstErr = err
					mu.Unlock()
					return
				}
				l = append(l, time.Since(t0))
			}
			lat[c] = l
		}()
	}
	wg.Wait()
	el := time.Since(start)
	b.StopTimer()
	if firstErr != nil {
		b.Fatal(firstErr)
	}
	all := slices.Concat(lat...)
	slices.Sort(all)
	q := func(p float64) float64 {
		if len(all) == 0 {
			return 0
		}
		return float64(all[min(len(all)-1, int(p*float64(len(all))))]) / float64(time.Millisecond)
	}
	b.ReportMetric(float64(b.N)/el.Seconds(), "records/s")
	b.ReportMetric(q(0.50), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
	b.ReportMetric(q(1)-1e-9, "max-ms")
}
