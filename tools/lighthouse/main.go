// Command lighthouse scores every page of both roles with Lighthouse (npm,
// pinned in package-lock.json) against Debian's chromium, in both languages
// at mobile and desktop settings, and writes the scores into the marked
// section of BENCHMARKS.md (and of the bench notes it is copied from).
//
//	make lighthouse        # npm ci here, then: go run ./tools/lighthouse
//
// It starts its own `phoenix dev` (private Redis and PostgreSQL) on free
// ports, logs in to the admin and likes one part, so that every page shows
// what a real visitor sees. It exits non-zero when a page scores below 100
// in any category, after writing every score; the not-found page may lose
// points for its 404 status alone (statusAudits).
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"phoenix/supervise"
)

// The sections of the reports this tool owns.
const (
	startMark = "<!-- lighthouse:start -->"
	endMark   = "<!-- lighthouse:end -->"
)

// categories are Lighthouse's four, in its own order.
var categories = []string{"performance", "accessibility", "best-practices", "seo"}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "lighthouse:", err)
		os.Exit(1)
	}
}

type options struct {
	runs    int
	outs    string
	chrome  string
	modules string
	only    string // comma-separated page names; "" scores every page
	reports string // folder for each run's full JSON report; "" keeps none
}

func run() error {
	var o options
	flag.IntVar(&o.runs, "runs", 3, "runs per page and setting; the median run counts (Lighthouse's own advice for noisy machines)")
	flag.StringVar(&o.outs, "out", "BENCHMARKS.md,tools/bench/NOTES.md", "comma-separated reports whose marked section is rewritten")
	flag.StringVar(&o.chrome, "chrome", "/usr/bin/chromium", "the browser")
	flag.StringVar(&o.modules, "modules", "tools/lighthouse/node_modules", "where npm ci installed lighthouse")
	flag.StringVar(&o.only, "pages", "", "comma-separated page names to score (a look at some pages: the reports are not rewritten); all when empty")
	flag.StringVar(&o.reports, "reports", "", "folder to keep each run's full Lighthouse JSON report in, to read what an audit found")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	tmp, err := os.MkdirTemp("", "phoenix-lighthouse-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	site, err := startPhoenix(ctx, tmp)
	if err != nil {
		return err
	}
	defer site.stop()
	pages, err := site.pages()
	if err != nil {
		return err
	}
	var rows []row
	failed := 0
	for _, p := range pages {
		if o.only != "" && !slices.Contains(strings.Split(o.only, ","), p.name) {
			continue
		}
		for _, lang := range []string{"en", "zh-CN"} {
			for _, form := range []string{"mobile", "desktop"} {
				r, err := score(ctx, o, tmp, p, lang, form)
				if err != nil {
					return fmt.Errorf("%s (%s, %s): %w", p.name, lang, form, err)
				}
				fmt.Printf("%-16s %-5s %-7s %s %s\n", p.name, lang, form, r.scoreText(), strings.Join(r.findings, "; "))
				if !r.asDesigned(p.notFound) {
					failed++
				}
				rows = append(rows, r)
			}
		}
	}
	section := report(rows, o.runs)
	for _, out := range strings.Split(o.outs, ",") {
		if o.only != "" {
			break // a look at some pages leaves the full table as it is
		}
		if err := rewriteSection(out, section); err != nil {
			return err
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d page settings score below 100 (beyond the not-found page's status)", failed, len(rows))
	}
	return nil
}

// page is one page to score, with the cookies its visitor holds.
type page struct {
	name, url string
	cookie    string
	notFound  bool // answers 404 by design, which Lighthouse refuses unless told
}

// site is the phoenix dev this tool runs.
type site struct {
	*supervise.Process
	shop, admin string
	password    string
}

func startPhoenix(ctx context.Context, tmp string) (*site, error) {
	bin := filepath.Join(tmp, "phoenix")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/phoenix").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build phoenix: %w\n%s", err, out)
	}
	names := []string{"shop-addr", "admin-addr", "worker-addr", "metrics-addr"}
	free, err := supervise.FreeAddrs(len(names))
	if err != nil {
		return nil, err
	}
	addrs := map[string]string{}
	for i, name := range names {
		addrs[name] = free[i]
	}
	s := &site{shop: "http://" + addrs["shop-addr"], admin: "http://" + addrs["admin-addr"], password: rand.Text()}
	args := []string{"dev", "-data-dir", filepath.Join(tmp, "data")}
	for name, a := range addrs {
		args = append(args, "-"+name, a)
	}
	// phoenix dev starts its own Redis and PostgreSQL first (initdb).
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	s.Process, err = supervise.StartProcess(ctx, supervise.ProcessOptions{
		Name: "phoenix", Path: bin, Args: args, Env: []string{"PHOENIX_ADMIN_PASSWORD=" + s.password}, Dir: tmp,
		Ready: supervise.HTTPReady(s.shop+"/readyz", s.admin+"/readyz", "http://"+addrs["worker-addr"]+"/readyz"),
	})
	if err != nil {
		return nil, fmt.Errorf("phoenix dev: %w", err)
	}
	return s, nil
}

func (s *site) stop() { _ = s.Stop() }

var (
	productLink = regexp.MustCompile(`href="(/products/[a-z0-9-]+)"`)
	csrfField   = regexp.MustCompile(`name="csrf" value="([^"]+)"`)
)

// pages visits the site as a shopper (who likes one part) and as a
// logged-in admin, and lists every page with that visitor's cookies.
func (s *site) pages() ([]page, error) {
	shopper, body, err := visit(s.shop + "/")
	if err != nil {
		return nil, err
	}
	m := productLink.FindStringSubmatch(body)
	t := csrfField.FindStringSubmatch(body)
	if m == nil || t == nil {
		return nil, errors.New("catalog page: no product link or CSRF token")
	}
	product := m[1]
	form := url.Values{"csrf": {t[1]}}
	resp, err := shopper.PostForm(s.shop+product+"/like", form)
	if err != nil {
		return nil, err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("like %s: status %d", product, resp.StatusCode)
	}
	admin, body, err := visit(s.admin + "/login")
	if err != nil {
		return nil, err
	}
	if t = csrfField.FindStringSubmatch(body); t == nil {
		return nil, errors.New("login page: no CSRF token")
	}
	resp, err = admin.PostForm(s.admin+"/login", url.Values{"csrf": {t[1]}, "password": {s.password}})
	if err != nil {
		return nil, err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("admin login: status %d", resp.StatusCode)
	}
	cookies := func(c *http.Client, base string) string {
		u, _ := url.Parse(base)
		var parts []string
		for _, k := range c.Jar.Cookies(u) {
			parts = append(parts, k.Name+"="+k.Value)
		}
		return strings.Join(parts, "; ")
	}
	sc, ac := cookies(shopper, s.shop), cookies(admin, s.admin)
	if !strings.Contains(ac, "phoenix_admin=") {
		return nil, fmt.Errorf("admin login failed (cookies %q)", ac)
	}
	return []page{
		{"catalog", s.shop + "/", sc, false},
		{"search results", s.shop + "/?q=brake", sc, false},
		{"product", s.shop + product, sc, false},
		{"my likes", s.shop + "/likes", sc, false},
		{"not found", s.shop + "/no-such-page", sc, true},
		{"login", s.admin + "/login", "", false},
		{"dashboard", s.admin + "/admin", ac, false},
	}, nil
}

// visit opens u with a fresh cookie jar and returns the client and body.
func visit(u string) (*http.Client, string, error) {
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	resp, err := c.Get(u)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return c, string(body), err
}

// row is the median run of one page at one setting.
type row struct {
	page, lang, form string
	scores           map[string]int
	findings         []string // audits that cost points, in the median run
	failed           []string // their ids
}

// statusAudits are the audits a page that answers 404 by design fails for
// its status alone: the status itself (SEO), the console line a 404 load
// logs (best practices), and the back/forward cache, which keeps no error
// page.
var statusAudits = []string{"http-status-code", "errors-in-console", "bf-cache"}

// asDesigned reports whether r scores 100 in every category or, for a page
// that answers 404 by design (notFound), loses points for that alone.
func (r row) asDesigned(notFound bool) bool {
	perfect := !slices.ContainsFunc(categories, func(c string) bool { return r.scores[c] != 100 })
	return perfect || notFound && !slices.ContainsFunc(r.failed, func(id string) bool { return !slices.Contains(statusAudits, id) })
}

func (r row) scoreText() string {
	parts := make([]string, len(categories))
	for i, c := range categories {
		parts[i] = fmt.Sprintf("%d", r.scores[c])
	}
	return strings.Join(parts, "/")
}

// lhr is what this tool reads of Lighthouse's JSON result.
type lhr struct {
	RuntimeError *struct{ Code, Message string } `json:"runtimeError"`
	Categories   map[string]struct {
		Score *float64 `json:"score"`
	} `json:"categories"`
	Audits map[string]struct {
		Score        *float64 `json:"score"`
		Mode         string   `json:"scoreDisplayMode"`
		DisplayValue string   `json:"displayValue"`
	} `json:"audits"`
}

func score(ctx context.Context, o options, tmp string, p page, lang, form string) (row, error) {
	headers := map[string]string{"Accept-Language": lang}
	if p.cookie != "" {
		headers["Cookie"] = p.cookie
	}
	hdr, _ := json.Marshal(headers)
	var runs []row
	retries := 0
	for i := 0; i < o.runs; i++ {
		profile, err := os.MkdirTemp(tmp, "chrome-*")
		if err != nil {
			return row{}, err
		}
		args := []string{p.url, "--quiet", "--output=json", "--output-path=stdout",
			"--extra-headers=" + string(hdr),
			"--chrome-flags=--headless --no-sandbox --disable-gpu --disable-background-networking " +
				"--disable-component-update --no-first-run --user-data-dir=" + profile}
		if form == "desktop" {
			args = append(args, "--preset=desktop")
		}
		if p.notFound {
			args = append(args, "--ignore-status-code")
		}
		cmd := exec.CommandContext(ctx, filepath.Join(o.modules, ".bin", "lighthouse"), args...)
		cmd.Env = append(os.Environ(), "CHROME_PATH="+o.chrome)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		var res lhr
		if err == nil {
			err = json.Unmarshal(out, &res)
		}
		if err == nil && o.reports != "" {
			name := strings.ReplaceAll(fmt.Sprintf("%s-%s-%s-%d.json", p.name, lang, form, i), " ", "-")
			err = os.WriteFile(filepath.Join(o.reports, name), out, 0o600)
		}
		if err == nil && res.RuntimeError != nil && res.RuntimeError.Code != "" {
			err = errors.New(res.RuntimeError.Message)
		}
		if err != nil {
			// A failed trace (NO_NAVSTART and the like, on a busy machine)
			// is not a score: run again, a few times.
			if retries++; retries <= 3 && ctx.Err() == nil {
				i--
				continue
			}
			return row{}, fmt.Errorf("lighthouse: %w\n%s", err, stderr.String())
		}
		r := row{page: p.name, lang: lang, form: form, scores: map[string]int{}}
		for _, c := range categories {
			if s := res.Categories[c].Score; s != nil {
				r.scores[c] = int(*s*100 + 0.5)
			}
		}
		for id, a := range res.Audits {
			if a.Score != nil && *a.Score < 1 && a.Mode != "informative" && a.Mode != "manual" && a.Mode != "notApplicable" {
				r.findings = append(r.findings, strings.TrimSpace(id+" "+a.DisplayValue))
				r.failed = append(r.failed, id)
			}
		}
		sort.Strings(r.findings)
		runs = append(runs, r)
	}
	// The median by performance, the only category that moves between runs.
	sort.Slice(runs, func(i, j int) bool { return runs[i].scores["performance"] < runs[j].scores["performance"] })
	return runs[len(runs)/2], nil
}

func report(rows []row, runs int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n## Lighthouse\n\nWritten by `make lighthouse` (tools/lighthouse, Lighthouse 12.2.3 from npm, Debian's chromium) on %s. "+
		"Each figure is the median of %d runs by performance; scores are performance / accessibility / best practices / SEO.\n\n",
		startMark, time.Now().UTC().Format("2006-01-02 15:04 UTC"), runs)
	fmt.Fprintf(&b, "| page | language | setting | scores | what cost points |\n|---|---|---|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", r.page, r.lang, r.form, r.scoreText(), strings.Join(r.findings, "; "))
	}
	fmt.Fprintf(&b, "\nThe not-found page answers 404 on purpose: Lighthouse counts that status against SEO (http-status-code), "+
		"logs it as a console error (errors-in-console) and keeps the page out of the back/forward cache; a 200 there would be a soft 404.\n")
	fmt.Fprintf(&b, "\n%s", endMark)
	return b.String()
}

// rewriteSection replaces the marked section of the file at path, or
// appends it when the file has none.
func rewriteSection(path, section string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	s := string(data)
	i, j := strings.Index(s, startMark), strings.Index(s, endMark)
	if i >= 0 && j > i {
		s = s[:i] + section + s[j+len(endMark):]
	} else {
		s = strings.TrimRight(s, "\n") + "\n\n" + section + "\n"
	}
	return os.WriteFile(path, []byte(s), 0o600)
}
