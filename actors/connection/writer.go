package connection

import (
	"net"
	"sync"

	"github.com/tacagent/tacagent/tacplus"
)

// writer is the socket's write path. The actor appends encoded packets to buf under mu and kicks the
// writer goroutine, which swaps buffers and writes everything pending in one Write: under load several
// packets share one system call. The actor never blocks on the socket.
type writer struct {
	mu     sync.Mutex
	buf    []byte
	failed bool
	kick   chan struct{}
	done   chan struct{}
}

func newWriter() *writer {
	return &writer{kick: make(chan struct{}, 1), done: make(chan struct{}), buf: make([]byte, 0, 4096)}
}

// add encodes one packet into the pending buffer. It returns the encoded size.
func (w *writer) add(c *tacplus.Codec, h tacplus.Header, b tacplus.Body) (int, error) {
	w.mu.Lock()
	before := len(w.buf)
	var err error
	w.buf, err = c.AppendPacket(w.buf, h, b)
	n := len(w.buf) - before
	w.mu.Unlock()
	if err != nil {
		return 0, err
	}
	select {
	case w.kick <- struct{}{}:
	default:
	}
	return n, nil
}

// run writes until done is closed or a write fails; onErr reports the failure to the actor.
func (w *writer) run(conn net.Conn, onErr func(error)) {
	spare := make([]byte, 0, 4096)
	for {
		select {
		case <-w.done:
			return
		case <-w.kick:
		}
		w.mu.Lock()
		w.buf, spare = spare[:0], w.buf
		w.mu.Unlock()
		if len(spare) == 0 {
			continue
		}
		if _, err := conn.Write(spare); err != nil {
			w.mu.Lock()
			w.failed = true
			w.mu.Unlock()
			onErr(err)
			return
		}
	}
}
