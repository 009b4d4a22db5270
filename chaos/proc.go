package chaos

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// DefaultReadyTimeout bounds how long StartProc waits for a process's readiness line.
const DefaultReadyTimeout = 20 * time.Second

// ProcConfig describes a child process.
type ProcConfig struct {
	Path string
	Args []string
	Env  []string // added to the test's environment
	// LogPath receives the process's stderr, and its stdout after the readiness line (appended, so that a
	// restarted process keeps one log).
	LogPath string
	// ReadyLine makes StartProc wait for the first stdout line and return it (the test servers print their
	// address there once they accept connections).
	ReadyLine    bool
	ReadyTimeout time.Duration // default DefaultReadyTimeout
}

// Proc is a running child process in its own process group. Signals go to the whole group, so that
// nothing it started survives it.
type Proc struct {
	cfg  ProcConfig
	cmd  *exec.Cmd
	log  *os.File
	done chan struct{} // closed when the process has been reaped

	mu    sync.Mutex
	state *os.ProcessState
	err   error
}

// StartProc starts the process and, with cfg.ReadyLine, waits for its first stdout line. On any error the
// process is killed and reaped before StartProc returns.
func StartProc(cfg ProcConfig) (*Proc, string, error) {
	if cfg.ReadyTimeout <= 0 {
		cfg.ReadyTimeout = DefaultReadyTimeout
	}
	logf, err := os.OpenFile(cfg.LogPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, "", err
	}
	cmd := exec.Command(cfg.Path, cfg.Args...)
	cmd.Env = append(os.Environ(), cfg.Env...)
	cmd.Stderr = logf
	// Its own group, so that a kill reaches every process it started; and a SIGKILL if the test process
	// dies first (a -timeout panic), so that no server outlives the suite.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	var stdout io.ReadCloser
	if cfg.ReadyLine {
		if stdout, err = cmd.StdoutPipe(); err != nil {
			logf.Close()
			return nil, "", err
		}
	} else {
		cmd.Stdout = logf
	}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, "", err
	}
	p := &Proc{cfg: cfg, cmd: cmd, log: logf, done: make(chan struct{})}
	lines := make(chan string, 1)
	copied := make(chan struct{})
	if stdout != nil {
		go func() {
			defer close(copied)
			r := bufio.NewReader(stdout)
			first, _ := r.ReadString('\n')
			lines <- strings.TrimSpace(first)
			_, _ = io.Copy(logf, r) // until the process (and its group) closes the pipe
		}()
	} else {
		close(copied)
	}
	go func() {
		<-copied // Wait must not run before the reads from the pipe are done
		err := cmd.Wait()
		p.mu.Lock()
		p.state, p.err = cmd.ProcessState, err
		p.mu.Unlock()
		logf.Close()
		close(p.done)
	}()
	if !cfg.ReadyLine {
		return p, "", nil
	}
	timer := time.NewTimer(cfg.ReadyTimeout)
	defer timer.Stop()
	select {
	case line := <-lines:
		if line == "" {
			p.Kill()
			return nil, "", fmt.Errorf("%s exited before its readiness line (%s)", cfg.Path, p.exitText())
		}
		return p, line, nil
	case <-timer.C:
		p.Kill()
		return nil, "", fmt.Errorf("%s printed no readiness line within %s", cfg.Path, cfg.ReadyTimeout)
	}
}

// Pid is the process id (and its group's id).
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Done is closed once the process has exited and been reaped.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Signal sends sig to the process group; it is a no-op once the process has been reaped.
func (p *Proc) Signal(sig syscall.Signal) error {
	select {
	case <-p.done:
		return nil
	default:
	}
	err := syscall.Kill(-p.cmd.Process.Pid, sig)
	if errors.Is(err, syscall.ESRCH) {
		return nil
	}
	return err
}

// Kill SIGKILLs the group and waits until the process is reaped.
func (p *Proc) Kill() {
	_ = p.Signal(syscall.SIGKILL)
	<-p.done
}

// Stop sends SIGTERM and waits up to timeout for the exit; past it the group is killed and an error
// returned. It returns the exit code.
func (p *Proc) Stop(timeout time.Duration) (int, error) {
	if err := p.Signal(syscall.SIGTERM); err != nil {
		return -1, err
	}
	return p.Wait(timeout)
}

// Wait waits up to timeout for the process to exit by itself and returns its exit code; past the timeout
// the group is killed and an error returned.
func (p *Proc) Wait(timeout time.Duration) (int, error) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-p.done:
		return p.ExitCode(), nil
	case <-timer.C:
		p.Kill()
		return p.ExitCode(), fmt.Errorf("%s did not exit within %s; killed", p.cfg.Path, timeout)
	}
}

// ExitCode is the exit status once the process has been reaped (-1 when a signal ended it, or before).
func (p *Proc) ExitCode() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.state == nil {
		return -1
	}
	return p.state.ExitCode()
}

func (p *Proc) exitText() string {
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		return p.err.Error()
	}
	return "exit 0"
}
