package spool

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
	"golang.org/x/sys/unix"

	"github.com/tacagent/tacagent/internal/secfile"
	"github.com/tacagent/tacagent/tacplus"
)

// The file's buckets. meta holds the format marker, written when the file is made: a bbolt file
// without it (another program's) is foreign and moved aside, never read as records.
var (
	bucketMeta    = []byte("meta")
	bucketRecords = []byte("records") // seq -> record
	bucketSent    = []byte("sent")    // seq -> "" while a delivery attempt may have reached a server
	bucketDead    = []byte("dead")    // seq -> reason + record
	keyFormat     = []byte("format")
	formatMarker  = []byte("tacagent-accounting-spool/1")
)

// errCorrupt marks a file that is not a readable spool: it is moved aside.
type errCorrupt struct{ why string }

func (e *errCorrupt) Error() string { return e.why }

// Open opens (or creates) the spool file and starts delivering its records with cfg.Send. A corrupt or
// foreign file is renamed to PATH.corrupt-TIME, logged at error, and a fresh spool starts; a file locked
// by another process fails with ErrLocked after cfg.LockTimeout; a directory that cannot be written fails
// with class tacplus.ErrConfig.
func Open(cfg Config) (*Spool, error) {
	cfg.setDefaults()
	if cfg.Send == nil {
		return nil, &tacplus.Error{Class: tacplus.ErrConfig, Msg: "spool: no SendFunc"}
	}
	dir := filepath.Dir(cfg.Path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, &tacplus.Error{Class: tacplus.ErrConfig, Msg: fmt.Sprintf("accounting spool: cannot create the directory %s (set accounting.spool.path to a writable place, or create it for the daemon's user)", dir), Err: err}
	}
	// Whoever can write the directory or replace the file can read and forge accounting records: the
	// same rules as the socket directory (internal/secfile), and the file must be a plain file of ours.
	if _, err := secfile.CheckDir(dir, "accounting spool directory"); err != nil {
		return nil, &tacplus.Error{Class: tacplus.ErrConfig, Msg: "accounting spool", Err: err}
	}
	if err := checkFile(cfg.Path); err != nil {
		return nil, err
	}
	db, st, err := openFile(&cfg)
	var corrupt *errCorrupt
	if errors.As(err, &corrupt) {
		aside := fmt.Sprintf("%s.corrupt-%s", cfg.Path, cfg.Now().UTC().Format("20060102T150405.000000000Z"))
		if rerr := os.Rename(cfg.Path, aside); rerr != nil {
			return nil, &tacplus.Error{Class: tacplus.ErrConfig, Msg: "accounting spool: " + cfg.Path + " is not a readable spool and cannot be moved aside", Err: errors.Join(err, rerr)}
		}
		cfg.Log.Error().Str("path", cfg.Path).Str("moved_to", aside).Str("reason", corrupt.why).
			Msg("accounting spool file is corrupt or foreign: moved aside, starting with an empty spool (its records are not replayed; inspect the moved file)")
		db, st, err = openFile(&cfg)
	}
	if err != nil {
		return nil, err
	}
	s := &Spool{cfg: cfg, log: cfg.Log, db: db, m: cfg.Metrics, st: st,
		appendCh: make(chan *appendReq, cfg.MaxBatch), resCh: make(chan result, cfg.Senders),
		stopping: make(chan struct{}), done: make(chan struct{})}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	st.s = s
	s.publish()
	if n := len(st.fifo); n > 0 {
		s.log.Info().Str("path", cfg.Path).Int("records", n).Int("possibly_sent", st.possiblySent).Int("dead_letters", st.deadCount).
			Msg("accounting spool opened: replaying records")
	} else {
		s.log.Debug().Str("path", cfg.Path).Msg("accounting spool opened")
	}
	go s.run()
	return s, nil
}

// checkFile refuses a spool path that is a symlink or not a regular file, or a file owned by another user
// or writable by group or others. A missing file is made by bbolt (mode 0600).
func checkFile(path string) error {
	var st unix.Stat_t
	err := unix.Lstat(path, &st)
	switch {
	case errors.Is(err, unix.ENOENT):
		return nil
	case err != nil:
		return &tacplus.Error{Class: tacplus.ErrConfig, Msg: "accounting spool " + path, Err: err}
	case st.Mode&unix.S_IFMT != unix.S_IFREG:
		return &tacplus.Error{Class: tacplus.ErrConfig, Msg: fmt.Sprintf("accounting spool %s is not a regular file (a symbolic link, a directory...): remove it and let the daemon create it", path)}
	case st.Uid != 0 && st.Uid != uint32(os.Geteuid()):
		return &tacplus.Error{Class: tacplus.ErrConfig, Msg: fmt.Sprintf("accounting spool %s is owned by uid %d, not root or the daemon's user", path, st.Uid)}
	case st.Mode&0o022 != 0:
		return &tacplus.Error{Class: tacplus.ErrConfig, Msg: fmt.Sprintf("accounting spool %s has mode %04o: group or others may write it; chmod 600 it", path, st.Mode&0o777)}
	}
	return nil
}

// openFile opens the bbolt file and loads the index. A panic of bbolt while reading a damaged file is
// turned into errCorrupt.
func openFile(cfg *Config) (db *bolt.DB, st *state, err error) {
	db, err = bolt.Open(cfg.Path, 0o600, &bolt.Options{Timeout: cfg.LockTimeout, NoFreelistSync: true,
		FreelistType: bolt.FreelistMapType})
	switch {
	case err == nil:
	case errors.Is(err, berrors.ErrTimeout):
		return nil, nil, &tacplus.Error{Class: tacplus.ErrConfig, Msg: fmt.Sprintf("accounting spool %s: still locked after %s: another tacagent (or another program) has it open; give each daemon its own accounting.spool.path", cfg.Path, cfg.LockTimeout), Err: ErrLocked}
	case errors.Is(err, fs.ErrPermission):
		return nil, nil, &tacplus.Error{Class: tacplus.ErrConfig, Msg: fmt.Sprintf("accounting spool %s: not writable by this user (set accounting.spool.path, or give the daemon's user the directory)", cfg.Path), Err: err}
	case errors.As(err, new(*fs.PathError)), errors.As(err, new(syscall.Errno)):
		// The system refused (a directory, a full disk...): not the file's content.
		return nil, nil, &tacplus.Error{Class: tacplus.ErrConfig, Msg: "accounting spool " + cfg.Path, Err: err}
	default:
		// bbolt could not read its own structures (ErrInvalid, ErrChecksum, ErrVersionMismatch, "file
		// size too small"...): a damaged or foreign file.
		return nil, nil, &errCorrupt{why: err.Error()}
	}
	st, err = load(db, cfg)
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	return db, st, nil
}

// load checks the format marker (making the buckets of a new file) and builds the index.
func load(db *bolt.DB, cfg *Config) (st *state, err error) {
	defer func() {
		if p := recover(); p != nil {
			st, err = nil, &errCorrupt{why: fmt.Sprint("reading the file panicked: ", p)}
		}
	}()
	err = db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			empty := true
			_ = tx.ForEach(func([]byte, *bolt.Bucket) error { empty = false; return nil })
			if !empty {
				return &errCorrupt{why: "a bbolt file without the spool's format marker (another program's file?)"}
			}
			var err error
			if meta, err = tx.CreateBucket(bucketMeta); err != nil {
				return err
			}
			if err := meta.Put(keyFormat, formatMarker); err != nil {
				return err
			}
		} else if f := meta.Get(keyFormat); string(f) != string(formatMarker) {
			return &errCorrupt{why: fmt.Sprintf("format marker %q, want %q", f, formatMarker)}
		}
		for _, b := range [][]byte{bucketRecords, bucketSent, bucketDead} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	st = newState(cfg)
	// Undecodable records are moved to the dead-letter bucket as they are (with the reason) in a second
	// transaction, so that the read pass stays read-only.
	type bad struct {
		seq    uint64
		reason string
	}
	var bads []bad
	err = db.View(func(tx *bolt.Tx) error {
		sent := tx.Bucket(bucketSent)
		c := tx.Bucket(bucketRecords).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			seq, ok := keySeq(k)
			if !ok {
				return &errCorrupt{why: fmt.Sprintf("a record key of %d bytes", len(k))}
			}
			st.nextSeq = max(st.nextSeq, seq+1)
			r, err := decodeRecord(seq, v)
			if err != nil {
				bads = append(bads, bad{seq, err.Error()})
				continue
			}
			e := &entry{seq: seq, size: int64(len(v) + len(k)), accepted: r.Accepted.UnixNano(), loaded: true}
			if sent.Get(k) != nil {
				e.marked, e.prevRun = true, true
				st.possiblySent++
			}
			st.add(e, r.Task(), false)
		}
		d := tx.Bucket(bucketDead)
		st.deadCount = d.Stats().KeyN
		if k, _ := d.Cursor().Last(); k != nil {
			if seq, ok := keySeq(k); ok {
				st.nextSeq = max(st.nextSeq, seq+1)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(bads) > 0 {
		err = db.Update(func(tx *bolt.Tx) error {
			for _, b := range bads {
				k := seqKey(b.seq)
				v := tx.Bucket(bucketRecords).Get(k)
				if err := tx.Bucket(bucketDead).Put(k, encodeDead("undecodable: "+b.reason, v)); err != nil {
					return err
				}
				if err := tx.Bucket(bucketRecords).Delete(k); err != nil {
					return err
				}
				_ = tx.Bucket(bucketSent).Delete(k)
				cfg.Log.Error().Uint64("seq", b.seq).Str("reason", b.reason).Msg("accounting spool: an undecodable record moved to the dead-letter bucket")
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		st.deadCount += len(bads)
		st.deadAtLoad = len(bads)
	}
	if st.nextSeq == 0 {
		st.nextSeq = 1
	}
	st.loadedAt = time.Now()
	return st, nil
}
