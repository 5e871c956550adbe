package supervise

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const (
	// proxyStopTimeout is how long Stop waits for nginx to finish its
	// requests after SIGQUIT.
	proxyStopTimeout = 10 * time.Second
	// proxyStartTimeout bounds readiness when ctx has no deadline.
	proxyStartTimeout = 30 * time.Second
	// certValidity is how long the generated certificate is valid; a new
	// one is made at every start.
	certValidity = 30 * 24 * time.Hour
)

// ProxyOptions configures StartProxy.
type ProxyOptions struct {
	// Dir holds nginx's configuration, the certificate and logs. Required.
	Dir string
	// Shops and Admins are the upstream replicas, "127.0.0.1:port" each.
	Shops, Admins []string
	// ShopPort and AdminPort are the HTTPS ports on 127.0.0.1; 0 picks a
	// free port.
	ShopPort, AdminPort int
}

// Proxy is Debian's nginx terminating TLS on 127.0.0.1 in front of the shop
// and admin replicas, as an ingress does: it balances round robin, sets
// X-Real-IP to the address it saw (overwriting what the client sent) and
// X-Forwarded-Proto to https. Its certificate is self-signed for 127.0.0.1
// and localhost and is its own CA, so a client can trust exactly it.
type Proxy struct {
	opts ProxyOptions // Dir absolute, ports resolved
	cert *x509.Certificate
	p    *proc
}

// StartProxy writes a certificate and a configuration into o.Dir, starts
// nginx and waits until both ports accept connections.
func StartProxy(ctx context.Context, o ProxyOptions) (*Proxy, error) {
	bin, err := findBinary("nginx", "nginx")
	if st, serr := os.Stat("/usr/sbin/nginx"); err != nil && serr == nil && !st.IsDir() {
		bin, err = "/usr/sbin/nginx", nil // Debian's place, off a user's PATH
	}
	if err != nil {
		return nil, err
	}
	if o.Dir == "" || len(o.Shops) == 0 || len(o.Admins) == 0 {
		return nil, errors.New("start proxy: Dir, Shops and Admins are required")
	}
	if o.Dir, err = filepath.Abs(o.Dir); err != nil {
		return nil, fmt.Errorf("start proxy: %w", err)
	}
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("start proxy: %w", err)
	}
	if o.ShopPort, err = resolvePort(o.ShopPort); err != nil {
		return nil, fmt.Errorf("start proxy: %w", err)
	}
	if o.AdminPort, err = resolvePort(o.AdminPort); err != nil {
		return nil, fmt.Errorf("start proxy: %w", err)
	}
	for _, port := range []int{o.ShopPort, o.AdminPort} {
		if err := checkPortFree(port); err != nil {
			return nil, fmt.Errorf("start proxy: %w", err)
		}
	}
	x := &Proxy{opts: o}
	if x.cert, err = writeCert(o.Dir); err != nil {
		return nil, fmt.Errorf("start proxy: %w", err)
	}
	conf := filepath.Join(o.Dir, "nginx.conf")
	if err := os.WriteFile(conf, []byte(nginxConf(o)), 0o600); err != nil {
		return nil, fmt.Errorf("start proxy: %w", err)
	}
	logPath := filepath.Join(o.Dir, "error.log")
	logFrom := logSize(logPath)
	x.p, err = startProc(procSpec{
		path: bin,
		args: []string{"-p", o.Dir, "-e", logPath, "-c", conf, "-g", "daemon off;"},
		dir:  o.Dir, pdeath: syscall.SIGTERM, logPath: logPath,
	})
	if err != nil {
		return nil, fmt.Errorf("start proxy: %w", err)
	}
	ctx, cancel := withDefaultTimeout(ctx, proxyStartTimeout)
	defer cancel()
	if err := pollUntil(ctx, x.p, x.listening); err != nil {
		x.p.kill()
		return nil, withTail(fmt.Errorf("start proxy: %w", err), logPath, logFrom)
	}
	return x, nil
}

func (x *Proxy) listening(ctx context.Context) error {
	for _, port := range []int{x.opts.ShopPort, x.opts.AdminPort} {
		d := net.Dialer{Timeout: time.Second}
		c, err := d.DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			return err
		}
		_ = c.Close()
	}
	return nil
}

// ShopURL returns the shop's public address, "https://127.0.0.1:port".
func (x *Proxy) ShopURL() string { return "https://127.0.0.1:" + strconv.Itoa(x.opts.ShopPort) }

// AdminURL returns the admin's public address, "https://127.0.0.1:port".
func (x *Proxy) AdminURL() string { return "https://127.0.0.1:" + strconv.Itoa(x.opts.AdminPort) }

// Cert returns the proxy's certificate, for a client's trusted roots.
func (x *Proxy) Cert() *x509.Certificate { return x.cert }

// CertFile returns the path of the certificate in PEM form.
func (x *Proxy) CertFile() string { return filepath.Join(x.opts.Dir, "cert.pem") }

// Stop ends nginx gracefully (SIGQUIT: finish requests, then exit). It is
// idempotent.
func (x *Proxy) Stop() error {
	x.p.stop(syscall.SIGQUIT, proxyStopTimeout)
	return nil
}

// nginxConf is the proxy's whole configuration: everything under Dir, no
// access log (the roles log every request themselves).
func nginxConf(o ProxyOptions) string {
	upstream := func(addrs []string) string {
		var b strings.Builder
		for _, a := range addrs {
			b.WriteString("server " + a + " max_fails=1 fail_timeout=1s; ")
		}
		return b.String()
	}
	return fmt.Sprintf(`worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 1024; }
http {
	access_log off;
	client_body_temp_path %[1]s/body;
	proxy_temp_path %[1]s/proxy;
	fastcgi_temp_path %[1]s/fastcgi;
	uwsgi_temp_path %[1]s/uwsgi;
	scgi_temp_path %[1]s/scgi;
	ssl_certificate %[1]s/cert.pem;
	ssl_certificate_key %[1]s/key.pem;
	proxy_http_version 1.1;
	proxy_set_header Connection "";
	proxy_set_header Host $http_host;
	# Overwritten, never appended: the client cannot choose its address.
	proxy_set_header X-Real-IP $remote_addr;
	proxy_set_header X-Forwarded-Proto $scheme;
	proxy_buffering off;
	# A replica that refuses connections (max_fails) is skipped for a
	# second, not ten; a refused connection is retried on the next one.
	upstream shop { %[2]s keepalive 32; }
	upstream admin { %[3]s keepalive 8; }
	server { listen 127.0.0.1:%[4]d ssl; location / { proxy_pass http://shop; } }
	server { listen 127.0.0.1:%[5]d ssl; location / { proxy_pass http://admin; } }
}
`, o.Dir, upstream(o.Shops), upstream(o.Admins), o.ShopPort, o.AdminPort)
}

// writeCert writes a new self-signed certificate for 127.0.0.1 and
// localhost (cert.pem) and its key (key.pem) into dir.
func writeCert(dir string) (*x509.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "phoenix local proxy"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(certValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	for _, f := range []struct {
		name, typ string
		b         []byte
	}{{"cert.pem", "CERTIFICATE", der}, {"key.pem", "EC PRIVATE KEY", keyDER}} {
		if err := os.WriteFile(filepath.Join(dir, f.name), pem.EncodeToMemory(&pem.Block{Type: f.typ, Bytes: f.b}), 0o600); err != nil {
			return nil, err
		}
	}
	return x509.ParseCertificate(der)
}
