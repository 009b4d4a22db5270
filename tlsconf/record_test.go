package tlsconf_test

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/tacagent/tacagent/tacplus"
	"github.com/tacagent/tacagent/tlsconf"
)

// recordServer accepts one TLS connection and reports the size of every Read: crypto/tls returns at most
// one record per Read, which is how a server that reads one packet per record behaves.
func recordServer(t *testing.T, tc *tls.Config, want int) (addr string, reads func() []int) {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", tc)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var sizes []int
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(waitLimit))
		buf := make([]byte, 1<<16)
		total := 0
		for total < want {
			n, err := c.Read(buf)
			if n > 0 {
				mu.Lock()
				sizes = append(sizes, n)
				mu.Unlock()
				total += n
			}
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String(), func() []int {
		select {
		case <-done:
		case <-time.After(waitLimit):
			t.Fatal("record server did not finish")
		}
		mu.Lock()
		defer mu.Unlock()
		return append([]int(nil), sizes...)
	}
}

// packets encodes n authentication STARTs of different sizes into one buffer, as the connection actor's
// writer hands them to the socket.
func packets(t *testing.T, n int) ([]byte, []int) {
	t.Helper()
	c, err := tacplus.NewCodec(tacplus.Options{Unencrypted: true, AllowUnencrypted: true})
	if err != nil {
		t.Fatal(err)
	}
	var buf []byte
	var sizes []int
	for i := range n {
		before := len(buf)
		user := "user" + string(rune('a'+i))
		for range i * 7 {
			user += "x"
		}
		body := &tacplus.AuthenStart{Action: tacplus.ActionLogin, PrivLvl: 1, Type: tacplus.AuthenTypePAP,
			Service: tacplus.ServiceLogin, User: user, Port: "tty1", Data: "secret-pw"}
		h := tacplus.Header{Version: 0xc1, Type: tacplus.TypeAuthen, SeqNo: 1, SessionID: uint32(i + 1)}
		buf, err = c.AppendPacket(buf, h, body)
		if err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, len(buf)-before)
	}
	return buf, sizes
}

// TestOnePacketPerRecord: several packets handed over in one Write leave in one TLS record each (the
// default), or share records when Coalesce is set.
func TestOnePacketPerRecord(t *testing.T) {
	p := newPKI(t)
	buf, sizes := packets(t, 5)
	for _, coalesce := range []bool{false, true} {
		addr, reads := recordServer(t, serverTLS(p.server), len(buf))
		s := p.clientSettings()
		s.Coalesce = coalesce
		d := newDialer(t, s)
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		c, err := d.Dial(ctx, addr)
		cancel()
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		if n, err := c.Write(buf); err != nil || n != len(buf) {
			t.Fatalf("write: %d, %v", n, err)
		}
		got := reads()
		c.Close()
		if !coalesce {
			if !equalInts(got, sizes) {
				t.Fatalf("per-packet records: server reads %v, want one packet per record %v", got, sizes)
			}
		} else if len(got) != 1 || got[0] != len(buf) {
			t.Fatalf("coalesced: server reads %v, want one record of %d bytes", got, len(buf))
		}
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestDialNeverPlaintext: a server that speaks plain TACACS+ on the TLS port is refused; nothing is sent
// in the clear beyond the ClientHello.
func TestDialNeverPlaintext(t *testing.T) {
	p := newPKI(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan []byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- nil
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(waitLimit))
		b := make([]byte, 5)
		_, err = io.ReadFull(c, b)
		if err == nil {
			c.Write([]byte{0xc1, 0x01, 0x02, 0x00, 0, 0, 0, 1, 0, 0, 0, 6, 1, 0, 0, 0, 0, 0}) // a TACACS+ reply
		}
		got <- b
	}()
	defer ln.Close()
	d := newDialer(t, p.clientSettings())
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	c, err := d.Dial(ctx, ln.Addr().String())
	if err == nil {
		c.Close()
		t.Fatal("dial to a plaintext server succeeded")
	}
	var he *tlsconf.HandshakeError
	if !errors.As(err, &he) || he.Reason != tlsconf.ReasonNotTLS {
		t.Fatalf("error %T %v, want *HandshakeError with reason %s", err, err, tlsconf.ReasonNotTLS)
	}
	first := <-got
	if len(first) != 5 || first[0] != 0x16 || first[1] != 0x03 {
		t.Fatalf("first bytes on the wire %x, want a TLS handshake record", first)
	}
	t.Logf("plaintext server: %v", err)
}
