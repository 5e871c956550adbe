package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"phoenix/supervise"
	"phoenix/testkit"
)

// topologyStartTimeout bounds how long the whole topology may take to come
// up on a busy 2-core machine.
const topologyStartTimeout = 3 * time.Minute

var (
	bannerShop  = regexp.MustCompile(`Shop: +(https://localhost:\d+)/`)
	bannerAdmin = regexp.MustCompile(`Admin dashboard: +(https://localhost:\d+)/admin`)
	bannerPass  = regexp.MustCompile(`Admin password: +(\S+)`)
	bannerCert  = regexp.MustCompile(`Certificate: +(\S+)`)
)

// TestTopology_StartStop runs `phoenix dev -topology cluster` as a user
// does, as a process of its own: the banner names the public URLs and the
// password; both shop replicas and both admin replicas answer through nginx
// with TLS, each footer naming its replica; SIGTERM stops it with exit 0
// and leaves no process behind.
func TestTopology_StartStop(t *testing.T) {
	bin := testkit.Phoenix(t)
	cmd := exec.Command(bin, "dev", "-topology", "cluster", "-data-dir", t.TempDir()) // #nosec G204 -- the test's own phoenix binary
	cmd.Env = append(os.Environ(), "PHOENIX_SHOP_ADDR=127.0.0.1:0", "PHOENIX_ADMIN_ADDR=127.0.0.1:0", "PHOENIX_ADMIN_PASSWORD=")
	var logs syncBuffer
	cmd.Stderr = &logs
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	banner := make(chan string, 1)
	go func() {
		var b strings.Builder
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			b.WriteString(sc.Text() + "\n")
			if strings.HasPrefix(sc.Text(), "Stop:") {
				banner <- b.String()
			}
		}
		exited <- cmd.Wait()
		logs.Write([]byte(b.String()))
	}()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Process.Kill()
		if t.Failed() {
			t.Logf("phoenix dev -topology cluster output:\n%s", logs.String())
		}
	})
	var text string
	select {
	case text = <-banner:
	case err := <-exited:
		if strings.Contains(logs.String(), "not found: install the Debian package") && os.Getenv("CI") != "true" {
			t.Skipf("a server is missing: %s", logs.String())
		}
		t.Fatalf("phoenix dev -topology cluster exited at start: %v", err)
	case <-time.After(topologyStartTimeout):
		t.Fatalf("no banner within %v", topologyStartTimeout)
	}
	t.Logf("banner:\n%s", text)
	shop, admin, pass, cert := bannerShop.FindStringSubmatch(text), bannerAdmin.FindStringSubmatch(text), bannerPass.FindStringSubmatch(text), bannerCert.FindStringSubmatch(text)
	if shop == nil || admin == nil || pass == nil || cert == nil {
		t.Fatalf("banner lacks the shop, admin, generated password or certificate:\n%s", text)
	}
	c := trustingClient(t, cert[1])
	seen := func(url string, names ...string) {
		t.Helper()
		got := map[string]bool{}
		for range 8 {
			body := getOK(t, c, url)
			for _, n := range names {
				got[n] = got[n] || strings.Contains(body, `class="instance">`+n+`<`)
			}
		}
		for _, n := range names {
			if !got[n] {
				t.Errorf("%s: no footer named %s in 8 answers (seen %v)", url, n, got)
			}
		}
	}
	seen(strings.Replace(shop[1], "localhost", "127.0.0.1", 1)+"/", "shop-1", "shop-2")
	seen(strings.Replace(admin[1], "localhost", "127.0.0.1", 1)+"/login", "admin-1", "admin-2")

	family := descendants(cmd.Process.Pid)
	// 2 shops, 2 admins, 2 workers, 6 Redis nodes, nginx and PostgreSQL
	// (with its own helpers) at least.
	if len(family) < 14 {
		t.Errorf("%d descendant processes, want at least 14: %v", len(family), family)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("after SIGTERM: %v, want exit 0", err)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("did not stop within 2 minutes of SIGTERM")
	}
	var left []string
	for _, pid := range family {
		if alive(pid) {
			comm, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
			left = append(left, strconv.Itoa(pid)+" "+strings.TrimSpace(string(comm)))
		}
	}
	if len(left) > 0 {
		t.Errorf("processes left after stop: %v", left)
	}
}

// trustingClient is an HTTPS client that trusts only the certificate in
// the PEM file at path.
func trustingClient(t *testing.T, path string) *http.Client {
	t.Helper()
	pemBytes, err := os.ReadFile(filepath.Clean(path))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		t.Fatalf("%s holds no PEM block", path)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return proxyClient(cert, "127.0.0.1")
}

// getOK fetches url and fails unless it answers 200.
func getOK(t *testing.T, c *http.Client, url string) string {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status %d\n%s", url, resp.StatusCode, b)
	}
	return string(b)
}

// descendants lists every process below pid, from /proc.
func descendants(pid int) []int {
	children := map[int][]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		if len(f) > 1 {
			if pp, err := strconv.Atoi(f[1]); err == nil {
				children[pp] = append(children[pp], p)
			}
		}
	}
	var out []int
	var walk func(int)
	walk = func(p int) {
		for _, c := range children[p] {
			out = append(out, c)
			walk(c)
		}
	}
	walk(pid)
	return out
}

// alive reports whether pid is a live process (not a zombie).
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	return len(f) > 0 && f[0] != "Z" && f[0] != "X"
}

// startTestTopology starts the topology in this process (the roles are
// child processes of the built phoenix binary) with settings for load
// from one address; cleanup stops it.
func startTestTopology(t *testing.T) *topology {
	t.Helper()
	vars := topologyDefaults()
	for k, v := range map[string]string{
		"PHOENIX_ADMIN_PASSWORD":        faultPassword,
		"PHOENIX_SECRET":                strings.Repeat("s", 40),
		"PHOENIX_LIKE_RATE_PER_SHOPPER": "0", // the load is many Likes a second per shopper
		"PHOENIX_SHOPPER_RATE_PER_IP":   "0", // every simulated shopper comes from 127.0.0.1
		"PHOENIX_WORKER_BATCH":          "100",
		"PHOENIX_WORKER_BLOCK":          "100ms",
		"PHOENIX_WORKER_CLAIM_IDLE":     "1s",
		"PHOENIX_LOG_LEVEL":             "warn",
	} {
		vars[k] = v
	}
	ctx, cancel := context.WithTimeout(context.Background(), topologyStartTimeout)
	defer cancel()
	topo, err := startTopology(ctx, topologyConfig{bin: testkit.Phoenix(t), dir: t.TempDir(), shops: 2, admins: 2, workers: 2, vars: vars})
	if err != nil {
		if os.Getenv("CI") != "true" && strings.Contains(err.Error(), "not found: install the Debian package") {
			t.Skip(err)
		}
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := topo.stop(); err != nil {
			t.Errorf("stop topology: %v", err)
		}
		if t.Failed() {
			for _, ps := range [][]*supervise.Process{topo.shops, topo.admins, topo.workers} {
				for _, p := range ps {
					b, _ := os.ReadFile(p.LogPath())
					t.Logf("%s log:\n%s", p.Name(), b)
				}
			}
		}
	})
	return topo
}
