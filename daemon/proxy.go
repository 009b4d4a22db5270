package daemon

import (
	"context"

	"github.com/tacagent/tacagent/agent"
	"github.com/tacagent/tacagent/localapi"
	"github.com/tacagent/tacagent/proxy"
)

// ServeTACACS starts the loopback TACACS+ front end (listen.tacacs) on addr: its clients' sessions go
// through the daemon's current agent (authentication on the default group, authorization and accounting
// on their groups) and accounting through the spool when it is on. It shares the local API's failure
// rate limit when the local API is served (call ServeAPI first). cfg's Backend, Limiter, Log and Metrics
// are set here. It runs until Shutdown.
func (d *Daemon) ServeTACACS(addr string, allowNonLoopback bool, cfg proxy.Config, rate localapi.RateLimit) error {
	cfg.AllowNonLoopback = allowNonLoopback
	cfg.Backend, cfg.Log, cfg.Metrics = tacacsBackend{d}, d.log, d.m
	d.mu.Lock()
	if d.api != nil {
		cfg.Limiter = d.api.Limiter()
	} else {
		cfg.Limiter = localapi.NewLimiter(rate)
	}
	d.mu.Unlock()
	srv, err := proxy.New(cfg)
	if err != nil {
		return err
	}
	ln, err := proxy.Listen(addr, allowNonLoopback)
	if err != nil {
		return err
	}
	d.mu.Lock()
	if d.closing.Load() {
		d.mu.Unlock()
		_ = ln.Close()
		return agent.ErrClosed
	}
	d.tacacs, d.tacacsAddr = srv, ln.Addr().String()
	d.mu.Unlock()
	d.bg.Add(1)
	go func() {
		defer d.bg.Done()
		if err := srv.Serve(ln); err != nil {
			d.log.Error().Err(err).Msg("tacacs front end stopped")
		}
	}()
	d.log.Info().Str("listen", ln.Addr().String()).Msg("tacacs front end listening")
	return nil
}

// TACACSAddr is the front end's listening address, "" when it is off.
func (d *Daemon) TACACSAddr() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.tacacsAddr
}

// shutdownTACACS stops the front end before the agent drains: sessions in progress may finish.
func (d *Daemon) shutdownTACACS(ctx context.Context) error {
	if d.tacacs == nil {
		return nil
	}
	return d.tacacs.Shutdown(ctx)
}

// tacacsBackend serves the front end's sessions from the runtime current when each starts.
type tacacsBackend struct{ d *Daemon }

func (b tacacsBackend) Authenticate(ctx context.Context, req agent.AuthenRequest, conv agent.Conversation) (*agent.AuthenReply, error) {
	return onCurrent(backend(b), func(rt *runtime) (*agent.AuthenReply, error) { return rt.agent.Authenticate(ctx, req, conv) })
}

func (b tacacsBackend) Authorize(ctx context.Context, req agent.AuthorRequest) (*agent.AuthorReply, error) {
	return onCurrent(backend(b), func(rt *runtime) (*agent.AuthorReply, error) {
		return rt.agent.Authorize(ctx, req, agent.InGroup(rt.settings.AuthorGroup))
	})
}

// Account makes the record durable in the spool when it is on (the client's SUCCESS means "kept", and
// the spool delivers it, at least once); without the spool, SUCCESS means a server took it.
func (b tacacsBackend) Account(ctx context.Context, req agent.AcctRequest) (string, error) {
	if sp := b.d.spool; sp != nil {
		_, err := sp.Append(ctx, "", req)
		return "", err
	}
	return onCurrent(backend(b), func(rt *runtime) (string, error) {
		r, err := rt.agent.Account(ctx, req, agent.InGroup(rt.settings.AcctGroup))
		if r == nil {
			return "", err
		}
		return r.ServerMsg, err
	})
}
