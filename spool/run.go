package spool

import (
	"container/heap"
	"context"
	"errors"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/tacagent/tacagent/tacplus"
)

type entryState uint8

const (
	queued   entryState = iota // waiting for its turn
	inflight                   // handed to a sender
	gone                       // delivered, dropped or dead-lettered (no longer counted)
)

// entry is one waiting record in the index. The record itself stays in the file (rec is held only from
// Append to the first dispatch).
type entry struct {
	seq      uint64
	size     int64
	accepted int64 // Unix nanoseconds
	task     *task
	rec      *Record
	state    entryState
	dropped  bool // dropped by the cap while in flight: leaves its task when the attempt ends
	marked   bool // a "sent" mark is in the file
	prevRun  bool // marked by an earlier process: delivering it may duplicate
	loaded   bool // read from the file at Open
	waited   bool // not delivered at its first chance (an outage, an ERROR, a task backing off)
	attempts int
	strikes  int    // ERROR answers that count towards the dead letter
	okAt     uint64 // deliveries seen (state.okCount) at the last strike
	ticket   *Ticket
}

// task is the FIFO of one task_id's records; only its head is ever in flight.
type task struct {
	id      string
	q       []*entry
	until   time.Time // ERROR backoff of the head
	errors  int       // ERROR answers of the head, for the backoff
	ready   bool      // in state.readyQ
	heapIdx int       // index in state.delayed, -1 when not delayed
}

type job struct {
	e   *entry
	rec *Record
}

type result struct {
	e   *entry
	d   Delivery
	err error
}

// lingerFor is how long the deletes and dispatches that delivery results call for may wait for the next
// appends, to share their commit (and fsync) rather than take one of their own.
const lingerFor = 2 * time.Millisecond

type deadMove struct {
	seq    uint64
	reason string
}

// state is the owner goroutine's index; nothing else touches it (Open builds it before the goroutine).
type state struct {
	s        *Spool
	cfg      *Config
	nextSeq  uint64
	fifo     []*entry // acceptance order; gone entries are skipped lazily
	fifoHead int
	tasks    map[string]*task
	readyQ   []*task
	fresh    []*task // tasks readied by a new append: served before the backlog, so a caller waits for one attempt, not a replay
	delayed  taskHeap
	waiting  map[*entry]struct{} // entries with an unresolved ticket that are not in flight

	depth    int
	bytes    int64
	inflight int
	okCount  uint64

	outage      bool
	outageSince time.Time
	outageUntil time.Time
	outageStep  int
	probe       *entry // the one record sent to test whether an outage ended; nil when none is out
	lastErr     error

	pendingDel  []uint64
	pendingDead []deadMove
	deadCount   int

	possiblySent, deadAtLoad int
	loadedAt                 time.Time
	stopping                 bool
	commitFailed             bool // the last commit failed: Close does not wait for pending deletes
}

func newState(cfg *Config) *state {
	return &state{cfg: cfg, tasks: map[string]*task{}, waiting: map[*entry]struct{}{}}
}

// add puts e at the tail of its task and of the acceptance order; fresh marks an append (not a load).
func (st *state) add(e *entry, taskID string, fresh bool) {
	t := st.tasks[taskID]
	if t == nil {
		t = &task{id: taskID, heapIdx: -1}
		st.tasks[taskID] = t
	}
	e.task = t
	t.q = append(t.q, e)
	st.fifo = append(st.fifo, e)
	st.depth++
	st.bytes += e.size
	if len(t.q) == 1 {
		if fresh && !t.ready && t.heapIdx < 0 {
			t.ready = true
			st.fresh = append(st.fresh, t)
			return
		}
		st.markReady(t)
	}
}

func (st *state) readyLen() int { return len(st.fresh) + len(st.readyQ) }

// popReady takes the next task to serve: fresh ones first.
func (st *state) popReady() *task {
	q := &st.readyQ
	if len(st.fresh) > 0 {
		q = &st.fresh
	}
	t := (*q)[0]
	(*q)[0] = nil
	*q = (*q)[1:]
	t.ready = false
	return t
}

func (st *state) markReady(t *task) {
	if !t.ready && t.heapIdx < 0 {
		t.ready = true
		st.readyQ = append(st.readyQ, t)
	}
}

// forget takes e out of the counts (delivered, dropped or dead). When e is its task's head and not in
// flight, the task moves on to its next record.
func (st *state) forget(e *entry) {
	if e.state == gone || e.dropped {
		return
	}
	st.depth--
	st.bytes -= e.size
	delete(st.waiting, e)
	if e.state == inflight {
		e.dropped = true // leaves its task when its attempt ends, so the next one cannot overtake it
		return
	}
	e.state = gone
	t := e.task
	if t.q[0] == e {
		st.popHead(t, e)
		return
	}
	// Not the head: only the cap does this, when the head is a dropped record still in flight.
	for i, x := range t.q {
		if x == e {
			t.q = append(t.q[:i], t.q[i+1:]...)
			break
		}
	}
	e.rec = nil
}

// popHead removes e, the head of t, and readies the next record.
func (st *state) popHead(t *task, e *entry) {
	if len(t.q) == 0 || t.q[0] != e {
		panic("spool: popHead of a record that is not its task's head")
	}
	t.q[0] = nil
	t.q = t.q[1:]
	e.rec = nil
	t.errors, t.until = 0, time.Time{}
	if t.heapIdx >= 0 {
		heap.Remove(&st.delayed, t.heapIdx)
	}
	if len(t.q) == 0 {
		delete(st.tasks, t.id)
		return
	}
	st.markReady(t)
}

// oldest returns the oldest record still counted, compacting the acceptance order as it goes.
func (st *state) oldest() *entry {
	for st.fifoHead < len(st.fifo) {
		e := st.fifo[st.fifoHead]
		if e.state != gone && !e.dropped {
			break
		}
		st.fifo[st.fifoHead] = nil
		st.fifoHead++
	}
	if st.fifoHead > 1024 && st.fifoHead > len(st.fifo)/2 {
		st.fifo = append(st.fifo[:0], st.fifo[st.fifoHead:]...)
		st.fifoHead = 0
	}
	if st.fifoHead == len(st.fifo) {
		return nil
	}
	return st.fifo[st.fifoHead]
}

func (st *state) overCap() bool {
	return (st.cfg.MaxRecords > 0 && st.depth > st.cfg.MaxRecords) || (st.cfg.MaxBytes > 0 && st.bytes > st.cfg.MaxBytes)
}

func (st *state) backoff(step int) time.Duration {
	d := st.cfg.RetryInitial
	for i := 0; i < step && d < st.cfg.RetryMax; i++ {
		d *= 2
	}
	return min(d, st.cfg.RetryMax)
}

// resolve answers e's caller, once.
func (st *state) resolve(e *entry, o Outcome) {
	delete(st.waiting, e)
	if !o.Delivered {
		e.waited = true
	}
	if e.ticket == nil {
		return
	}
	o.Seq = e.seq
	e.ticket.ch <- o
	e.ticket = nil
}

// release answers the callers whose records will not be attempted soon (an outage, or a task in backoff).
func (st *state) release() {
	for e := range st.waiting {
		switch {
		case st.outage:
			st.resolve(e, Outcome{Err: st.lastErr})
		case e.task.heapIdx >= 0:
			st.resolve(e, Outcome{Err: &tacplus.Error{Class: tacplus.ErrServerError, Msg: "spooled: an earlier record of this task is waiting for a retry"}})
		}
	}
}

// kind is what a delivery attempt's error means for the spool.
type kind int

const (
	delivered kind = iota
	refused        // a server answered ERROR (or the record is unusable now): this task backs off
	outage         // no server could be reached: all delivery backs off
)

func classify(err error) kind {
	switch {
	case err == nil:
		return delivered
	case errors.Is(err, tacplus.ErrServerError), errors.Is(err, tacplus.ErrConfig):
		return refused
	}
	return outage
}

func (st *state) onResult(r result) {
	s, e, now := st.s, r.e, time.Now()
	st.inflight--
	e.attempts++
	wasProbe := e == st.probe
	if wasProbe {
		st.probe = nil
	}
	if e.dropped {
		// Dropped by the cap during the attempt: its record is gone from the file already.
		e.state = gone
		st.resolve(e, Outcome{Delivered: r.err == nil, Delivery: r.d, Err: r.err})
		st.popHead(e.task, e)
		return
	}
	e.state = queued
	switch classify(r.err) {
	case delivered:
		st.okCount++
		if st.outage {
			st.outage = false
			s.log.Info().Dur("paused", now.Sub(st.outageSince)).Int("waiting", st.depth-1).Msg("accounting spool: a server took a record again, delivering")
		}
		st.outageStep = 0
		st.pendingDel = append(st.pendingDel, e.seq)
		if m := s.m; m != nil {
			m.Spool.Delivered.Inc()
			if e.waited || e.loaded {
				m.SpoolReplayed.Inc()
			}
			if e.prevRun {
				m.Spool.Duplicates.Inc()
			}
		}
		st.forget(e)
		s.publish() // a caller that reads status after its answer sees its record gone
		st.resolve(e, Outcome{Delivered: true, Delivery: r.d})
	case refused:
		if e.strikes == 0 || st.okCount > e.okAt {
			e.strikes++
		}
		e.okAt = st.okCount
		if s.m != nil {
			s.m.Spool.Retries.Inc()
		}
		st.resolve(e, Outcome{Delivery: r.d, Err: r.err})
		if e.strikes >= st.cfg.DeadLetterAfter {
			st.deadLetter(e, r.err.Error(), r.d.Server)
			return
		}
		t := e.task
		t.errors++
		t.until = now.Add(st.backoff(t.errors - 1))
		heap.Push(&st.delayed, t)
		s.log.Warn().Uint64("seq", e.seq).Str("task_id", t.id).Str("server", r.d.Server).Err(r.err).
			Dur("retry_in", t.until.Sub(now)).Msg("accounting spool: a server refused a record, retrying it later")
		st.release()
	case outage:
		st.lastErr = r.err
		st.resolve(e, Outcome{Delivery: r.d, Err: r.err})
		if !st.outage || wasProbe {
			if !st.outage {
				s.log.Warn().Err(r.err).Int("waiting", st.depth).Msg("accounting spool: no server took a record, spooling until one does")
				st.outageStep = 0
				st.outageSince = now
			} else {
				st.outageStep++
			}
			st.outage = true
			st.outageUntil = now.Add(st.backoff(st.outageStep))
		}
		st.markReady(e.task)
		st.release()
	}
}

// deadLetter moves e to the dead-letter bucket (at the next commit), counted and logged. The record's
// arguments are not logged: they may hold what a user typed.
func (st *state) deadLetter(e *entry, reason, server string) {
	st.pendingDead = append(st.pendingDead, deadMove{seq: e.seq, reason: reason})
	st.resolve(e, Outcome{Err: &tacplus.Error{Class: tacplus.ErrServerError, Msg: "spool: record moved to the dead-letter bucket: " + reason}})
	st.s.log.Error().Uint64("seq", e.seq).Str("task_id", e.task.id).Str("server", server).Str("reason", reason).Int("strikes", e.strikes).
		Msg("accounting spool: record refused as malformed, moved to the dead-letter bucket")
	if m := st.s.m; m != nil {
		m.Spool.DeadLetters.Inc()
	}
	st.forget(e)
}

// onTimer readies the tasks whose backoff ended.
func (st *state) onTimer() {
	now := time.Now()
	for len(st.delayed) > 0 && !st.delayed[0].until.After(now) {
		t := heap.Pop(&st.delayed).(*task)
		st.markReady(t)
	}
}

// nextWake is when the owner must look again without any message: a task's backoff or the outage's end.
func (st *state) nextWake() (time.Time, bool) {
	var at time.Time
	if len(st.delayed) > 0 {
		at = st.delayed[0].until
	}
	if st.outage && st.probe == nil && st.readyLen() > 0 && (at.IsZero() || st.outageUntil.Before(at)) {
		at = st.outageUntil
	}
	return at, !at.IsZero()
}

// commit writes one transaction: the batch of appends, the cap's drops, the deletes and dead letters
// pending, and the "sent" marks of the records dispatched now; then fsyncs (bbolt's commit), answers the
// appenders and returns the jobs to hand to the senders. On a failed commit the appenders get the error,
// the dispatch is undone, and the deletes stay pending for the next commit.
func (st *state) commit(batch []*appendReq) []job {
	s := st.s
	if len(batch) == 0 && !st.hasWork() {
		return nil
	}
	start := time.Now()
	tx, err := s.db.Begin(true)
	if err != nil {
		st.failBatch(batch, err)
		return nil
	}
	recs, sent, dead := tx.Bucket(bucketRecords), tx.Bucket(bucketSent), tx.Bucket(bucketDead)
	added := make([]*entry, 0, len(batch))
	var droppedNew map[*appendReq]bool
	jobs, err := func() ([]job, error) {
		for _, a := range batch {
			a.rec.Seq = st.nextSeq
			k := seqKey(a.rec.Seq)
			if err := recs.Put(k, a.val); err != nil {
				return nil, err
			}
			st.nextSeq++
			e := &entry{seq: a.rec.Seq, size: int64(len(a.val) + len(k)), accepted: a.rec.Accepted.UnixNano(), rec: a.rec, ticket: a.ticket}
			a.ticket.Seq = e.seq
			st.add(e, a.rec.Task(), true)
			added = append(added, e)
		}
		st.dropOverCap(batch, added, &droppedNew)
		var jobs []job
		for st.canDispatch() {
			t := st.popReady()
			if st.tasks[t.id] != t || len(t.q) == 0 || t.heapIdx >= 0 || t.q[0].state != queued || t.q[0].dropped {
				continue
			}
			e := t.q[0]
			k := seqKey(e.seq)
			rec := e.rec
			if rec == nil {
				v := recs.Get(k)
				if v == nil {
					st.forget(e) // cannot happen: the index and the file agree
					continue
				}
				var err error
				if rec, err = decodeRecord(e.seq, v); err != nil {
					st.deadLetter(e, "undecodable: "+err.Error(), "")
					continue
				}
				// Append validated it, but perhaps an older version wrote it: the agent must accept it.
				if err := Validate(&rec.Req); err != nil {
					st.deadLetter(e, "malformed: "+err.Error(), "")
					continue
				}
			}
			if !e.marked {
				if err := sent.Put(k, nil); err != nil {
					return jobs, err
				}
			}
			e.state = inflight
			st.inflight++
			delete(st.waiting, e)
			if st.outage {
				st.probe = e
			}
			jobs = append(jobs, job{e: e, rec: rec})
		}
		for _, seq := range st.pendingDel {
			k := seqKey(seq)
			if err := recs.Delete(k); err != nil {
				return jobs, err
			}
			if err := sent.Delete(k); err != nil {
				return jobs, err
			}
		}
		for _, d := range st.pendingDead {
			k := seqKey(d.seq)
			if v := recs.Get(k); v != nil {
				if err := dead.Put(k, encodeDead(d.reason, v)); err != nil {
					return jobs, err
				}
				st.deadCount++
			}
			if err := recs.Delete(k); err != nil {
				return jobs, err
			}
			if err := sent.Delete(k); err != nil {
				return jobs, err
			}
		}
		if over := st.deadCount - st.cfg.MaxDeadLetters; over > 0 {
			c := dead.Cursor()
			n := 0
			for k, _ := c.First(); k != nil && n < over; k, _ = c.First() {
				if err := c.Delete(); err != nil {
					return jobs, err
				}
				n++
			}
			st.deadCount -= n
			s.log.Error().Int("dropped", n).Int("max_dead_letters", st.cfg.MaxDeadLetters).Msg("accounting spool: dead-letter bucket full, its oldest entries dropped")
		}
		return jobs, nil
	}()
	if err == nil {
		err = tx.Commit()
	} else {
		_ = tx.Rollback()
	}
	if err != nil {
		// Undo this step's dispatch and appends; deletes, drops and dead letters stay pending.
		for _, j := range jobs {
			j.e.state = queued
			st.inflight--
			st.markReady(j.e.task)
		}
		st.probe = nil
		for i := len(added) - 1; i >= 0; i-- {
			e := added[i]
			if e.state == gone {
				continue
			}
			e.ticket = nil
			st.depth--
			st.bytes -= e.size
			t := e.task
			t.q = t.q[:len(t.q)-1]
			if len(t.q) == 0 {
				delete(st.tasks, t.id)
			}
			e.state = gone
		}
		st.deadCount = st.countDead()
		st.failBatch(batch, err)
		st.commitFailed = true
		s.log.Error().Err(err).Msg("accounting spool: commit failed")
		return nil
	}
	st.commitFailed = false
	st.pendingDel, st.pendingDead = st.pendingDel[:0], st.pendingDead[:0]
	for _, j := range jobs {
		j.e.marked = true
	}
	if m := s.m; m != nil {
		m.Spool.Commit.Observe(time.Since(start).Seconds())
		if len(batch) > 0 {
			m.Spool.CommitSize.Observe(float64(len(batch)))
			m.Spool.Appended.Add(float64(len(batch)))
		}
	}
	s.publish() // before any answer: a caller that reads status next sees its record
	for i, a := range batch {
		if droppedNew[a] {
			a.done <- ErrDroppedAtOnce
			continue
		}
		a.done <- nil
		e := added[i]
		switch {
		case e.state != queued || e.ticket == nil:
		case st.outage:
			st.resolve(e, Outcome{Err: st.lastErr})
		case e.task.heapIdx >= 0:
			st.waiting[e] = struct{}{}
			st.release()
		default:
			st.waiting[e] = struct{}{}
		}
	}
	return jobs
}

func (st *state) failBatch(batch []*appendReq, err error) {
	for _, a := range batch {
		a.done <- &tacplus.Error{Class: tacplus.ErrAborted, Msg: "spool: the record could not be committed", Err: err}
	}
}

func (st *state) countDead() int {
	n := 0
	_ = st.s.db.View(func(tx *bolt.Tx) error { n = tx.Bucket(bucketDead).Stats().KeyN; return nil })
	return n
}

// canDispatch reports whether a record may be handed to a sender now.
func (st *state) canDispatch() bool {
	if st.stopping || st.inflight >= st.cfg.Senders || st.readyLen() == 0 {
		return false
	}
	if st.outage {
		return st.probe == nil && !time.Now().Before(st.outageUntil)
	}
	return true
}

// dropOverCap drops the oldest records while the spool is over its cap, counted and logged once per
// commit. A record of this very batch that must go is never acknowledged (droppedNew).
func (st *state) dropOverCap(batch []*appendReq, added []*entry, droppedNew *map[*appendReq]bool) bool {
	if !st.overCap() {
		return false
	}
	n := 0
	var first *entry
	for st.overCap() {
		e := st.oldest()
		if e == nil {
			break
		}
		if first == nil {
			first = e
		}
		st.forget(e)
		if e.state == gone || e.dropped {
			st.pendingDel = append(st.pendingDel, e.seq)
		}
		for i, a := range added {
			if a == e {
				if *droppedNew == nil {
					*droppedNew = map[*appendReq]bool{}
				}
				(*droppedNew)[batch[i]] = true
				st.resolve(e, Outcome{Err: ErrDroppedAtOnce})
			}
		}
		st.resolve(e, Outcome{Err: &tacplus.Error{Class: tacplus.ErrAborted, Msg: "spool: full, the record was dropped"}})
		n++
	}
	if m := st.s.m; m != nil {
		m.SpoolDropped.Add(float64(n))
	}
	ev := st.s.log.Error().Int("dropped", n).Int("max_records", st.cfg.MaxRecords).Int64("max_bytes", st.cfg.MaxBytes)
	if first != nil {
		ev = ev.Uint64("oldest_seq", first.seq).Str("oldest_task_id", first.task.id).Time("oldest_accepted", time.Unix(0, first.accepted))
	}
	ev.Msg("accounting spool full: the oldest records were dropped")
	return true
}

// run is the owner goroutine: the only one that touches the index and writes the file.
func (s *Spool) run() {
	st := s.st
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	stopping := s.stopping
	linger := time.NewTimer(time.Hour)
	linger.Stop()
	lingering, lingered := false, false
	for first := true; ; first = false {
		var batch []*appendReq
		appendCh := s.appendCh
		if first {
			goto drain // records loaded by Open go out before any message arrives
		}
		select {
		case a := <-appendCh:
			batch = append(batch, a)
		case r := <-s.resCh:
			st.onResult(r)
		case <-timer.C:
		case <-linger.C:
			lingering, lingered = false, true
		case <-stopping:
			st.stopping, stopping = true, nil
		}
		// Whatever else is waiting joins this commit: that is the group commit.
	drain:
		for {
			if len(batch) >= s.cfg.MaxBatch {
				appendCh = nil
			}
			select {
			case a := <-appendCh:
				batch = append(batch, a)
			case r := <-s.resCh:
				st.onResult(r)
			default:
				break drain
			}
		}
		st.onTimer()
		if len(batch) == 0 && !st.stopping && !lingered && st.hasWork() {
			// Only delivery results: wait a little for appends to share the commit.
			if !lingering {
				lingering = true
				linger.Reset(lingerFor)
			}
			s.publish()
			resetTimer(timer, st)
			continue
		}
		if lingering {
			linger.Stop()
			lingering = false
		}
		lingered = false
		for _, j := range st.commit(batch) {
			s.senders.Add(1)
			go s.send(j) // at most Senders at once; none while idle
		}
		s.publish()
		if st.stopping && st.inflight == 0 && len(s.appendCh) == 0 && (st.commitFailed || len(st.pendingDel) == 0 && len(st.pendingDead) == 0) {
			break
		}
		resetTimer(timer, st)
	}
	timer.Stop()
	linger.Stop()
	s.senders.Wait()
	for e := range st.waiting {
		st.resolve(e, Outcome{Err: ErrClosed})
	}
	if err := s.db.Close(); err != nil {
		s.log.Error().Err(err).Msg("accounting spool: closing the file")
	}
	s.log.Debug().Int("waiting", st.depth).Msg("accounting spool closed")
	close(s.done)
}

func resetTimer(timer *time.Timer, st *state) {
	timer.Stop()
	if at, ok := st.nextWake(); ok {
		timer.Reset(max(time.Until(at), time.Millisecond))
	}
}

// hasWork reports whether a commit would write anything besides appends.
func (st *state) hasWork() bool {
	return len(st.pendingDel) > 0 || len(st.pendingDead) > 0 || st.canDispatch()
}

// send is one delivery attempt, on a goroutine of its own that ends with it. Its result never blocks:
// resCh holds Senders results and at most Senders attempts are out.
func (s *Spool) send(j job) {
	defer s.senders.Done()
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.SendTimeout)
	d, err := s.cfg.Send(ctx, j.rec)
	cancel()
	s.resCh <- result{e: j.e, d: d, err: err}
}

// publish copies the owner's counts where Stats and the metrics read them.
func (s *Spool) publish() {
	st := s.st
	s.depth.Store(int64(st.depth))
	s.bytes.Store(st.bytes)
	s.inflight.Store(int64(st.inflight))
	s.dead.Store(int64(st.deadCount))
	s.outage.Store(st.outage)
	var oldest int64
	if e := st.oldest(); e != nil {
		oldest = e.accepted
	}
	s.oldest.Store(oldest)
	if m := s.m; m != nil {
		m.SpoolDepth.Set(float64(st.depth))
		m.Spool.Bytes.Set(float64(st.bytes))
		m.Spool.DeadDepth.Set(float64(st.deadCount))
		if oldest != 0 {
			m.Spool.Oldest.Set(float64(oldest) / 1e9)
		} else {
			m.Spool.Oldest.Set(0)
		}
		if st.outage {
			m.Spool.Outage.Set(1)
		} else {
			m.Spool.Outage.Set(0)
		}
	}
}

// taskHeap orders delayed tasks by the end of their backoff.
type taskHeap []*task

func (h taskHeap) Len() int           { return len(h) }
func (h taskHeap) Less(i, j int) bool { return h[i].until.Before(h[j].until) }
func (h taskHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapIdx, h[j].heapIdx = i, j
}
func (h *taskHeap) Push(x any) {
	t := x.(*task)
	t.heapIdx = len(*h)
	*h = append(*h, t)
}
func (h *taskHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	t.heapIdx = -1
	return t
}
