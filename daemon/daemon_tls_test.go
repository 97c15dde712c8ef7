package daemon

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/omlcrm/oml-crm/ami"
	"github.com/omlcrm/oml-crm/ami/amitest"
	"github.com/omlcrm/oml-crm/config"
)

// asterisk.ami.tls_ca lets the daemon trust a self-signed Asterisk certificate: the
// mapped TLS settings log in to a TLS manager port; without the CA the session never
// comes up and the error is the certificate's.
func TestAMITLSConfigTrustsConfiguredCA(t *testing.T) {
	cert, _, err := amitest.NewSelfSignedCert("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(t.TempDir(), "asterisk.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]})
	if err := os.WriteFile(caFile, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	srv := amitest.NewServer(t, amitest.WithCredentials("omlcrm", "s3cret"),
		amitest.WithTLS(&tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}))

	dial := func(c config.AMI) error {
		tlsCfg, err := amiTLSConfig(c)
		if err != nil {
			t.Fatalf("amiTLSConfig: %v", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		stateErr := make(chan error, 1)
		cl, err := ami.Dial(ctx, ami.Config{Address: srv.Addr(), Username: "omlcrm", Secret: "s3cret", TLS: tlsCfg,
			OnState: func(s ami.State, err error) {
				if s == ami.StateDisconnected && err != nil {
					select {
					case stateErr <- err:
					default:
					}
				}
			}})
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		if err := cl.WaitConnected(ctx); err != nil {
			select {
			case e := <-stateErr:
				return e // why the session does not come up
			default:
				return err
			}
		}
		return nil
	}
	if err := dial(config.AMI{TLS: true, TLSCA: caFile}); err != nil {
		t.Fatalf("with asterisk.ami.tls_ca: %v", err)
	}
	var unknown x509.UnknownAuthorityError
	if err := dial(config.AMI{TLS: true}); !errors.As(err, &unknown) {
		t.Fatalf("without the CA: %v, want an unknown-authority error", err)
	}
	if err := dial(config.AMI{TLS: true, TLSInsecureSkipVerify: true}); err != nil {
		t.Fatalf("with tls_insecure_skip_verify: %v", err)
	}

	if tc, err := amiTLSConfig(config.AMI{TLS: false, TLSCA: caFile}); tc != nil || err != nil {
		t.Errorf("without tls: %v, %v; want nil, nil", tc, err)
	}
	notPEM := filepath.Join(t.TempDir(), "x.pem")
	_ = os.WriteFile(notPEM, []byte("nope"), 0o600)
	if _, err := amiTLSConfig(config.AMI{TLS: true, TLSCA: notPEM}); err == nil {
		t.Error("a CA file with no certificate was accepted")
	}
}
