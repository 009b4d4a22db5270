package tacplustest

import (
	"net"
	"time"

	"github.com/tacagent/tacagent/tacplus"
)

// DefaultClientTimeout bounds Client.Dial and each Client.Recv unless Client.Timeout says otherwise.
const DefaultClientTimeout = 5 * time.Second

// Client is a raw TACACS+ client for tests of this server and of the standalone binary: it writes the
// packets it is given and decodes what comes back. It keeps no session state, so a test controls every
// header field (and can get them wrong on purpose). It is not safe for concurrent use.
type Client struct {
	// Timeout bounds each Recv. Default DefaultClientTimeout.
	Timeout time.Duration

	nc    net.Conn
	codec *tacplus.Codec
	rd    *tacplus.Reader
}

// Dial connects to a TACACS+ server at addr with the shared key.
func Dial(addr string, key []byte) (*Client, error) {
	codec, err := tacplus.NewCodec(tacplus.Options{Role: tacplus.RoleClient, Key: key})
	if err != nil {
		return nil, err
	}
	nc, err := net.DialTimeout("tcp", addr, DefaultClientTimeout)
	if err != nil {
		return nil, err
	}
	return &Client{nc: nc, codec: codec, rd: codec.NewReader(nc)}, nil
}

// Send writes one packet in one Write. A zero h.Version takes tacplus.DefaultVersion(b).
func (c *Client) Send(h tacplus.Header, b tacplus.Body) error {
	pkt, err := c.codec.Marshal(h, b)
	if err != nil {
		return err
	}
	_, err = c.nc.Write(pkt)
	return err
}

// Recv reads and decodes the next packet. A decode error still returns the header.
func (c *Client) Recv() (tacplus.Header, tacplus.Body, error) {
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = DefaultClientTimeout
	}
	if err := c.nc.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return tacplus.Header{}, nil, err
	}
	h, raw, err := c.rd.Next()
	if err != nil {
		return h, nil, err
	}
	b, err := c.codec.NewBody(h)
	if err != nil {
		return h, nil, err
	}
	return h, b, c.codec.DecodeBody(h, raw, b)
}

// Conn returns the socket, for raw writes such as pipelined batches.
func (c *Client) Conn() net.Conn { return c.nc }

// Codec returns the client's codec.
func (c *Client) Codec() *tacplus.Codec { return c.codec }

// Close closes the connection.
func (c *Client) Close() error { return c.nc.Close() }
