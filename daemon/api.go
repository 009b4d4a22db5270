package daemon

import (
	"context"
	"io/fs"

	"github.com/tacagent/tacagent/localapi"
)

// ServeAPI listens on the unix socket at path (created with mode and group) and serves the local API with
// the daemon as its backend until Shutdown. cfg's Backend and Metrics are set here.
func (d *Daemon) ServeAPI(path string, mode fs.FileMode, cfg localapi.Config) error {
	if err := checkSocketDir(path); err != nil {
		return err
	}
	cfg.Backend = d.Backend()
	cfg.Metrics = d.m
	srv, err := localapi.New(cfg)
	if err != nil {
		return err
	}
	ln, err := localapi.Listen(path, mode, cfg.Group)
	if err != nil {
		return err
	}
	// Listen may have created the directory: check what it made (the umask decides its mode).
	if err := checkSocketDir(path); err != nil {
		_ = ln.Close()
		return err
	}
	d.mu.Lock()
	d.api = srv
	d.mu.Unlock()
	d.bg.Add(1)
	go func() {
		defer d.bg.Done()
		if err := srv.Serve(ln); err != nil {
			d.log.Error().Err(err).Msg("local API stopped")
		}
	}()
	d.log.Info().Str("socket", path).Msg("local API listening")
	return nil
}

// shutdownAPI stops the local API first, so that no new request arrives while the agent drains.
func (d *Daemon) shutdownAPI(ctx context.Context) error {
	if d.api == nil {
		return nil
	}
	return d.api.Shutdown(ctx)
}
