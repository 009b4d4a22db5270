package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// Network runs Toxiproxy in-process: one proxy (a Link) per server, each listening on a loopback port, with
// toxics that shape the traffic between the agent and that server.
type Network struct {
	api *toxiproxy.ApiServer

	mu    sync.Mutex
	links []*Link
}

// NewNetwork returns an empty network. Its metrics go to a private registry and its logs nowhere.
func NewNetwork() *Network {
	return &Network{api: toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())}
}

// Link starts a proxy on an ephemeral loopback port that forwards to upstream ("127.0.0.1:port").
func (n *Network) Link(name, upstream string) (*Link, error) {
	p := toxiproxy.NewProxy(n.api, name, "127.0.0.1:0", upstream)
	if err := p.Start(); err != nil {
		return nil, fmt.Errorf("proxy %s: %w", name, err)
	}
	l := &Link{p: p, name: name, addr: p.Listen} // Start wrote the bound address before returning
	n.mu.Lock()
	n.links = append(n.links, l)
	n.mu.Unlock()
	return l, nil
}

// Close removes every toxic (which closes connections a blackhole held) and stops every proxy, which
// closes their connections and ends their goroutines.
func (n *Network) Close() {
	n.mu.Lock()
	links := n.links
	n.links = nil
	n.mu.Unlock()
	for _, l := range links {
		l.Clear()
		l.p.Stop()
	}
}

// Link is one proxy between the agent and a server.
type Link struct {
	p    *toxiproxy.Proxy
	name string
	addr string

	mu     sync.Mutex
	active []string // toxic names, in the order added
}

// Addr is where the agent connects ("127.0.0.1:port").
func (l *Link) Addr() string { return l.addr }

// Name is the link's name.
func (l *Link) Name() string { return l.name }

// Toxic is one Toxiproxy toxic. Stream is "upstream" (agent to server) or "downstream" (server to agent);
// Toxicity is the probability that a new connection gets it (0 means 1).
type Toxic struct {
	Name       string
	Type       string
	Stream     string
	Toxicity   float32
	Attributes map[string]int64
}

// Latency delays every chunk by ms milliseconds, plus or minus jitterMs.
func Latency(stream string, ms, jitterMs int64) Toxic {
	return Toxic{Name: "latency_" + stream, Type: "latency", Stream: stream,
		Attributes: map[string]int64{"latency": ms, "jitter": jitterMs}}
}

// Bandwidth limits the stream to kbps kilobytes per second.
func Bandwidth(stream string, kbps int64) Toxic {
	return Toxic{Name: "bandwidth_" + stream, Type: "bandwidth", Stream: stream, Attributes: map[string]int64{"rate": kbps}}
}

// Slicer cuts every chunk into pieces of about size bytes (plus or minus variation), delayUs microseconds
// apart: a middlebox that re-segments the stream.
func Slicer(stream string, size, variation, delayUs int64) Toxic {
	return Toxic{Name: "slicer_" + stream, Type: "slicer", Stream: stream,
		Attributes: map[string]int64{"average_size": size, "size_variation": variation, "delay": delayUs}}
}

// Blackhole drops every byte and never closes: a server (or a firewall) that accepts and never answers.
// Removing it closes the connections it held.
func Blackhole(stream string) Toxic {
	return Toxic{Name: "timeout_" + stream, Type: "timeout", Stream: stream, Attributes: map[string]int64{"timeout": 0}}
}

// ResetPeer resets a connection (TCP RST) afterMs milliseconds after its first data on stream.
func ResetPeer(stream string, afterMs int64) Toxic {
	return Toxic{Name: "reset_peer_" + stream, Type: "reset_peer", Stream: stream, Attributes: map[string]int64{"timeout": afterMs}}
}

// LimitData closes a connection once it has carried bytes bytes on stream.
func LimitData(stream string, bytes int64) Toxic {
	return Toxic{Name: "limit_data_" + stream, Type: "limit_data", Stream: stream, Attributes: map[string]int64{"bytes": bytes}}
}

// Add installs t on the link; it applies to open connections and new ones.
func (l *Link) Add(t Toxic) error {
	if t.Toxicity == 0 {
		t.Toxicity = 1
	}
	body, err := json.Marshal(map[string]any{"name": t.Name, "type": t.Type, "stream": t.Stream,
		"toxicity": t.Toxicity, "attributes": t.Attributes})
	if err != nil {
		return err
	}
	if _, err := l.p.Toxics.AddToxicJson(strings.NewReader(string(body))); err != nil {
		return fmt.Errorf("link %s: toxic %s: %w", l.name, t.Name, err)
	}
	l.mu.Lock()
	l.active = append(l.active, t.Name)
	l.mu.Unlock()
	return nil
}

// Remove uninstalls the named toxic.
func (l *Link) Remove(name string) error {
	l.mu.Lock()
	for i, n := range l.active {
		if n == name {
			l.active = append(l.active[:i], l.active[i+1:]...)
			break
		}
	}
	l.mu.Unlock()
	if err := l.p.Toxics.RemoveToxic(context.Background(), name); err != nil {
		return fmt.Errorf("link %s: removing %s: %w", l.name, name, err)
	}
	return nil
}

// Clear removes every toxic.
func (l *Link) Clear() {
	l.mu.Lock()
	l.active = nil
	l.mu.Unlock()
	l.p.Toxics.ResetToxics(context.Background())
}

// Active lists the installed toxics by name.
func (l *Link) Active() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.active...)
}
