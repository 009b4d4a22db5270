package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"os"
	"sync"
)

// tlsFlags are the TACACS+ over TLS 1.3 (RFC 9887) options. With -tls-cert and -tls-key the server speaks
// TLS only. The certificate files are read at every handshake, so a test can rotate them under load by
// renaming new files into place.
type tlsFlags struct {
	cert, key, clientCA string
	tls12Only           bool
}

func addTLSFlags(fs *flag.FlagSet) *tlsFlags {
	f := &tlsFlags{}
	fs.StringVar(&f.cert, "tls-cert", "", "serve TLS with this certificate (PEM, chain); read at every handshake")
	fs.StringVar(&f.key, "tls-key", "", "the certificate's key (PEM)")
	fs.StringVar(&f.clientCA, "tls-client-ca", "", "require a client certificate signed by a CA of this PEM bundle")
	fs.BoolVar(&f.tls12Only, "tls12-only", false, "fault: speak TLS 1.2 at most (an RFC 9887 client must refuse)")
	return f
}

// config returns the TLS configuration, or nil when TLS is off.
func (f *tlsFlags) config() (*tls.Config, error) {
	if f.cert == "" && f.key == "" {
		if f.clientCA != "" || f.tls12Only {
			return nil, errors.New("-tls-client-ca and -tls12-only need -tls-cert and -tls-key")
		}
		return nil, nil
	}
	if f.cert == "" || f.key == "" {
		return nil, errors.New("-tls-cert and -tls-key go together")
	}
	if _, err := tls.LoadX509KeyPair(f.cert, f.key); err != nil {
		return nil, fmt.Errorf("TLS certificate: %w", err)
	}
	cert, key := f.cert, f.key
	// A rotation renames the certificate and the key one after the other: between the two, the pair does
	// not match. The last good pair is served then, as a production server would.
	var mu sync.Mutex
	var last *tls.Certificate
	tc := &tls.Config{MinVersion: tls.VersionTLS13,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			mu.Lock()
			defer mu.Unlock()
			c, err := tls.LoadX509KeyPair(cert, key)
			if err != nil {
				if last != nil {
					return last, nil
				}
				return nil, err
			}
			last = &c
			return last, nil
		}}
	if f.tls12Only {
		tc.MinVersion, tc.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
	}
	if f.clientCA != "" {
		pem, err := os.ReadFile(f.clientCA)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s: no PEM certificate", f.clientCA)
		}
		tc.ClientAuth, tc.ClientCAs = tls.RequireAndVerifyClientCert, pool
	}
	return tc, nil
}
