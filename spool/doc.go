// Package spool is the durable accounting spool: a bbolt file where every accounting record is committed
// and fsynced before its caller is acknowledged, and from which the records are delivered to the servers,
// in order within a task (task_id), until a server answered SUCCESS.
//
// One goroutine owns the file and the in-memory index (one owner, one exit): it commits the records of
// many callers in one transaction and one fsync (group commit), deletes delivered records, moves refused
// ones to the dead-letter bucket, drops the oldest records past the cap, and hands records to a bounded
// set of sender goroutines. Delivery is at least once: a record sent just before a crash, whose delete was
// not committed, is sent again after the restart and counted as a possible duplicate.
//
// The package sends nothing itself: the daemon gives it a SendFunc over the agent. It imports the
// messages (the record's type), fsm (to validate a record as the agent would), metrics, internal/secfile
// (the directory's checks) and the codec's error taxonomy; never the agent, the daemon or the local API.
package spool
