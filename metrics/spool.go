package metrics

import "github.com/prometheus/client_golang/prometheus"

// Spool holds the collectors of the durable accounting spool besides Metrics.SpoolDepth, SpoolDropped
// and SpoolReplayed. New creates it as Metrics.Spool. No label: a record's fields never become one.
type Spool struct {
	Appended    prometheus.Counter   // records made durable
	Delivered   prometheus.Counter   // records a server answered SUCCESS to, then deleted
	Retries     prometheus.Counter   // delivery attempts answered ERROR (retried with backoff)
	DeadLetters prometheus.Counter   // records moved to the dead-letter bucket
	DeadDepth   prometheus.Gauge     // records in the dead-letter bucket
	Duplicates  prometheus.Counter   // records delivered again after a restart found them possibly sent
	Bytes       prometheus.Gauge     // encoded size of the records waiting
	Oldest      prometheus.Gauge     // acceptance time of the oldest waiting record (Unix seconds; 0 when empty)
	Outage      prometheus.Gauge     // 1 while delivery is paused because no server could be reached
	Commit      prometheus.Histogram // one group commit (write and fsync)
	CommitSize  prometheus.Histogram // records appended per commit
}

func newSpool() *Spool {
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: "tacagent", Name: name, Help: help})
	}
	g := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "tacagent", Name: name, Help: help})
	}
	return &Spool{
		Appended:    c("spool_appended_total", "Accounting records committed to the spool (fsynced before the caller was answered)."),
		Delivered:   c("spool_delivered_total", "Spooled accounting records a server answered SUCCESS to (then deleted)."),
		Retries:     c("spool_retries_total", "Spool delivery attempts a server answered ERROR to (retried with backoff)."),
		DeadLetters: c("spool_dead_letters_total", "Accounting records moved to the spool's dead-letter bucket (refused as malformed)."),
		DeadDepth:   g("spool_dead_letter_depth", "Accounting records in the spool's dead-letter bucket."),
		Duplicates:  c("spool_duplicates_total", "Spooled records delivered again after a restart found them possibly sent already (at-least-once duplicates)."),
		Bytes:       g("spool_bytes", "Encoded size of the accounting records waiting in the spool."),
		Oldest:      g("spool_oldest_record_timestamp_seconds", "When the oldest waiting accounting record was accepted (Unix seconds; 0 when the spool is empty)."),
		Outage:      g("spool_outage", "1 while spool delivery is paused because no server could be reached."),
		Commit: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "tacagent", Name: "spool_commit_seconds",
			Help: "Duration of one spool group commit (write and fsync).", Buckets: DurationBuckets}),
		CommitSize: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "tacagent", Name: "spool_commit_records",
			Help: "Accounting records appended by one spool group commit.", Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096}}),
	}
}

func (s *Spool) collectors() []prometheus.Collector {
	return []prometheus.Collector{s.Appended, s.Delivered, s.Retries, s.DeadLetters, s.DeadDepth, s.Duplicates, s.Bytes,
		s.Oldest, s.Outage, s.Commit, s.CommitSize}
}
