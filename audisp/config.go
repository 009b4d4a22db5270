package audisp

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/tacagent/tacagent/internal/secfile"
	"github.com/tacagent/tacagent/tacplus"
)

// DefaultConfigPath is read when it exists; the plugin runs with the defaults when it does not.
const DefaultConfigPath = "/etc/tacagent/audisp.yaml"

// maxConfigBytes caps the plugin's configuration file.
const maxConfigBytes = 256 << 10

// FileConfig is the plugin's YAML configuration (docs/audit.md). Every field is optional.
type FileConfig struct {
	// SecretPatterns replace DefaultSecretPatterns: an argument matching one is masked (its "secret"
	// group, or all of it). An empty list masks nothing; absent keeps the defaults.
	SecretPatterns *[]string `yaml:"secret_patterns"`
	// SecretFlags replace DefaultSecretFlags: the argument after a matching one is masked.
	SecretFlags *[]string `yaml:"secret_flags"`
	QueueSize   int       `yaml:"queue_size"`   // default DefaultQueueSize
	EOETimeout  string    `yaml:"eoe_timeout"`  // default 2s
	SessionTTL  string    `yaml:"session_ttl"`  // default 1m
	NegativeTTL string    `yaml:"negative_ttl"` // default 10s
	ReapEvery   string    `yaml:"reap_every"`   // default 30s
}

// LoadConfig reads the plugin's configuration. A missing file at DefaultConfigPath (required false) gives
// the defaults; any other problem is an error of class tacplus.ErrConfig.
func LoadConfig(path string, required bool) (FileConfig, error) {
	var fc FileConfig
	b, err := secfile.ReadFile(path, secfile.Options{What: "audisp configuration file", Max: maxConfigBytes,
		FollowSymlinks: true, CheckOwner: true})
	if err != nil {
		if !required && errors.Is(err, os.ErrNotExist) {
			return fc, nil
		}
		return fc, &tacplus.Error{Class: tacplus.ErrConfig, Msg: "audisp configuration", Err: err}
	}
	return ParseConfig(b, path)
}

// ParseConfig decodes the YAML strictly (unknown keys are errors).
func ParseConfig(b []byte, name string) (FileConfig, error) {
	var fc FileConfig
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&fc); err != nil && !errors.Is(err, io.EOF) {
		return fc, &tacplus.Error{Class: tacplus.ErrConfig, Msg: name, Err: err}
	}
	if _, err := fc.Masker(); err != nil {
		return fc, &tacplus.Error{Class: tacplus.ErrConfig, Msg: name, Err: err}
	}
	for _, d := range []struct{ key, v string }{{"eoe_timeout", fc.EOETimeout}, {"session_ttl", fc.SessionTTL}, {"negative_ttl", fc.NegativeTTL}, {"reap_every", fc.ReapEvery}} {
		if d.v == "" {
			continue
		}
		if v, err := time.ParseDuration(d.v); err != nil || v <= 0 {
			return fc, &tacplus.Error{Class: tacplus.ErrConfig, Msg: fmt.Sprintf("%s: %s must be a positive duration such as 2s", name, d.key)}
		}
	}
	if fc.QueueSize < 0 {
		return fc, &tacplus.Error{Class: tacplus.ErrConfig, Msg: name + ": queue_size must be positive"}
	}
	return fc, nil
}

// Masker compiles the secret patterns (the defaults when the file does not set them).
func (fc FileConfig) Masker() (*Masker, error) {
	p, f := DefaultSecretPatterns, DefaultSecretFlags
	if fc.SecretPatterns != nil {
		p = *fc.SecretPatterns
	}
	if fc.SecretFlags != nil {
		f = *fc.SecretFlags
	}
	return NewMasker(p, f)
}

// Apply sets the file's values on cfg (ParseConfig validated them).
func (fc FileConfig) Apply(cfg *Config) error {
	m, err := fc.Masker()
	if err != nil {
		return err
	}
	cfg.Masker = m
	if fc.QueueSize > 0 {
		cfg.QueueSize = fc.QueueSize
	}
	dur := func(s string, d *time.Duration) {
		if v, err := time.ParseDuration(s); err == nil && v > 0 {
			*d = v
		}
	}
	dur(fc.EOETimeout, &cfg.EOETimeout)
	dur(fc.SessionTTL, &cfg.SessionTTL)
	dur(fc.NegativeTTL, &cfg.NegativeTTL)
	dur(fc.ReapEvery, &cfg.ReapEvery)
	return nil
}
