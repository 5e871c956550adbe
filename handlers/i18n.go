package handlers

import (
	"bytes"
	"errors"
	"fmt"
	"html"
	"html/template"
	"io/fs"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing/fstest"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/utils"
	"github.com/nicksnyder/go-i18n/v2/i18n"
	"golang.org/x/text/currency"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
	"golang.org/x/text/number"

	"phoenix/store"
)

// langCookie remembers the language a visitor picked with the switcher.
const langCookie = "phoenix_lang"

// headerAcceptLanguage is what a page's language depends on, besides langCookie.
const headerAcceptLanguage = "Accept-Language"

// defaultLang is the UI's language when a visitor states no preference,
// and the one every other message file must match key for key.
const defaultLang = "en"

// Locales is the one message catalog of both roles (go-i18n, from the
// embedded locales/*.toml) with the languages it speaks. The first is the
// default. It is read-only after NewLocales, so apps may share it.
type Locales struct {
	list    []*Locale
	matcher language.Matcher
}

// Locale is one language of the UI: its messages, and the number and price
// formats of golang.org/x/text for it.
type Locale struct {
	Code  string // BCP 47, as in <html lang>, the cookie and the catalog's translations: "en", "zh-CN"
	Name  string // the language's own name, for the switcher
	Index int    // position in Locales, for per-language caches

	messages *i18n.Localizer
	ids      map[string]bool   // the message ids, so that an unknown one fails the render
	plain    map[string]string // the messages without arguments, as they read: no go-i18n call per page
	printer  *message.Printer
	group    string // the digit group separator, when digits are ASCII in groups of three; "" otherwise
	// plainPercent: the locale writes a share as ASCII digits, a point,
	// one decimal and "%" ("63.6%"), so Percent can do it itself.
	plainPercent bool
	dollar       string // the shop's currency (its prices are in US cents) as this locale writes it
	clock        string // time.Format layout of a time that is not today
}

// NewLocales loads every message file of fsys ("en.toml", "zh-CN.toml"). It
// refuses a file whose message ids differ from the default language's, so
// that no page can fall back to English, or show a key, in another one.
func NewLocales(fsys fs.FS) (*Locales, error) {
	bundle := i18n.NewBundle(language.English)
	bundle.RegisterUnmarshalFunc("toml", toml.Unmarshal)
	files, err := fs.Glob(fsys, "*.toml")
	if err != nil {
		return nil, err
	}
	// The default first: it is what the matcher falls back to.
	slices.SortStableFunc(files, func(a, b string) int {
		return boolInt(a != defaultLang+".toml") - boolInt(b != defaultLang+".toml")
	})
	ls := &Locales{}
	var want map[string]bool
	var tags []language.Tag
	for _, name := range files {
		mf, err := bundle.LoadMessageFileFS(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("locale %s: %w", name, err)
		}
		ids, plain := map[string]bool{}, map[string]string{}
		for _, m := range mf.Messages {
			ids[m.ID] = true
			if m.Zero+m.One+m.Two+m.Few+m.Many == "" && !strings.Contains(m.Other, "{{") {
				plain[m.ID] = m.Other
			}
		}
		if want == nil {
			if mf.Tag != language.English {
				return nil, fmt.Errorf("locales: no %s.toml", defaultLang)
			}
			want = ids
		} else if err := sameKeys(want, ids); err != nil {
			return nil, fmt.Errorf("locale %s: %w", name, err)
		}
		code := strings.TrimSuffix(path.Base(name), ".toml")
		l := &Locale{Code: code, Index: len(ls.list), ids: ids, plain: plain, messages: i18n.NewLocalizer(bundle, code), printer: message.NewPrinter(mf.Tag)}
		l.dollar = l.printer.Sprint(currency.Symbol(currency.USD))
		l.group = groupSeparator(l.printer)
		l.plainPercent = plainPercent(l.printer)
		if l.Name, err = l.T("lang.name"); err != nil {
			return nil, fmt.Errorf("locale %s: %w", name, err)
		}
		if l.clock, err = l.T("format.clock"); err != nil {
			return nil, fmt.Errorf("locale %s: %w", name, err)
		}
		ls.list = append(ls.list, l)
		tags = append(tags, mf.Tag)
	}
	if len(ls.list) == 0 {
		return nil, errors.New("locales: no message files")
	}
	ls.matcher = language.NewMatcher(tags)
	return ls, nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func sameKeys(want, got map[string]bool) error {
	for id := range want {
		if !got[id] {
			return fmt.Errorf("message %q missing", id)
		}
	}
	for id := range got {
		if !want[id] {
			return fmt.Errorf("message %q not in %s.toml", id, defaultLang)
		}
	}
	return nil
}

// List returns the languages, the default first.
func (ls *Locales) List() []*Locale { return ls.list }

// Default returns the default language, English.
func (ls *Locales) Default() *Locale { return ls.list[0] }

// Lookup returns the language with the given code, if the UI speaks it.
func (ls *Locales) Lookup(code string) (*Locale, bool) {
	for _, l := range ls.list {
		if l.Code == code {
			return l, true
		}
	}
	return nil, false
}

// Pick chooses the language of a request: the switcher's cookie if it names
// one, else the best match for Accept-Language, else the default.
func (ls *Locales) Pick(cookie, acceptLanguage string) *Locale {
	if l, ok := ls.Lookup(cookie); ok {
		return l
	}
	if len(acceptLanguage) > 1024 {
		return ls.Default() // a header that long is no browser's
	}
	tags, _, err := language.ParseAcceptLanguage(acceptLanguage)
	if err != nil || len(tags) == 0 {
		return ls.Default()
	}
	_, i, conf := ls.matcher.Match(tags...)
	if conf == language.No {
		return ls.Default()
	}
	return ls.list[i]
}

// T returns message id. With one argument, that is the count that picks
// the plural form (shown as {{.Count}}, formatted); otherwise the
// arguments are name, value pairs for the message's template, numbers
// formatted for the locale, and a "Count" pair picks the plural form.
func (l *Locale) T(id string, args ...any) (string, error) {
	if s, ok := l.plain[id]; ok && len(args) == 0 {
		return s, nil
	}
	if !l.ids[id] {
		return "", fmt.Errorf("no message %q", id)
	}
	cfg := &i18n.LocalizeConfig{MessageID: id}
	switch {
	case len(args) == 1:
		cfg.PluralCount = args[0]
		cfg.TemplateData = map[string]any{"Count": l.format(args[0])}
	case len(args) > 1:
		if len(args)%2 != 0 {
			return "", fmt.Errorf("message %q: odd number of arguments", id)
		}
		data := make(map[string]any, len(args)/2)
		for i := 0; i < len(args); i += 2 {
			k, ok := args[i].(string)
			if !ok {
				return "", fmt.Errorf("message %q: argument %d is not a name", id, i)
			}
			if k == "Count" {
				cfg.PluralCount = args[i+1]
			}
			data[k] = l.format(args[i+1])
		}
		cfg.TemplateData = data
	}
	s, err := l.messages.Localize(cfg)
	if err != nil {
		return "", fmt.Errorf("message %q: %w", id, err)
	}
	return s, nil
}

// format writes numbers the locale's way and leaves anything else alone.
func (l *Locale) format(v any) any {
	switch n := v.(type) {
	case int:
		return l.Count(int64(n))
	case int64:
		return l.Count(n)
	}
	return v
}

// Count writes n with the locale's digit grouping, and a true minus sign.
// Every product card shows a count, so where the locale groups ASCII
// digits by three, as English and Chinese do, it does so itself: the
// printer costs seven allocations a number.
func (l *Locale) Count(n int64) string {
	if l.group == "" {
		if n < 0 {
			return "−" + strings.TrimPrefix(l.printer.Sprint(number.Decimal(n)), "-")
		}
		return l.printer.Sprint(number.Decimal(n))
	}
	var buf [24]byte
	digits := strconv.AppendInt(buf[:0], n, 10) // AppendInt, not -n: no overflow at the most negative int64
	var b strings.Builder
	b.Grow(len(digits) + len(digits)/3*len(l.group) + len("−"))
	if digits[0] == '-' {
		b.WriteString("−")
		digits = digits[1:]
	}
	for i, d := range digits {
		if i > 0 && (len(digits)-i)%3 == 0 {
			b.WriteString(l.group)
		}
		b.WriteByte(d)
	}
	return b.String()
}

// groupSeparator returns the separator p puts between groups of three
// ASCII digits, or "" when p writes numbers otherwise.
func groupSeparator(p *message.Printer) string {
	s := p.Sprint(number.Decimal(1234567))
	sep, ok := strings.CutPrefix(s, "1")
	if !ok {
		return ""
	}
	sep, _, ok = strings.Cut(sep, "234")
	if !ok || sep == "" || s != "1"+sep+"234"+sep+"567" || p.Sprint(number.Decimal(123)) != "123" {
		return ""
	}
	return sep
}

// Change writes a change with its sign: +3, −2, 0.
func (l *Locale) Change(n int64) string {
	if n > 0 {
		return "+" + l.Count(n)
	}
	return l.Count(n)
}

// Price writes a price in US cents in the shop's currency, with the
// locale's symbol for it ("$" in English, "US$" in Chinese) and digits.
func (l *Locale) Price(cents int64) string {
	return l.dollar + l.printer.Sprint(number.Decimal(float64(cents)/100, number.Scale(2)))
}

// Rate writes a rate per second: one decimal below 10, whole above.
func (l *Locale) Rate(f float64) string {
	if f < 10 {
		return l.printer.Sprint(number.Decimal(f, number.Scale(1)))
	}
	return l.Count(int64(f + 0.5))
}

// Percent writes a share (0..1) as a percentage with one decimal. The
// admin's table shows one per product; where the locale writes it plainly
// (plainPercent) it does so itself: the printer costs a dozen allocations.
func (l *Locale) Percent(f float64) string {
	if l.plainPercent && f >= 0 && f <= 1 {
		return tenthsPercent(f)
	}
	return l.printer.Sprint(number.Percent(f, number.Scale(1)))
}

// tenthsPercent writes a share (0..1) as "63.6%", rounded as the printer
// does: from f's exact decimal value (f*100 in floating point is not it),
// half to even. 25 decimals hold every exact tie (1/16 is 0.0625) and put
// every other share well clear of one.
func tenthsPercent(f float64) string {
	var buf [32]byte
	s := strconv.AppendFloat(buf[:0], f, 'f', 25, 64) // "0.0015000000000000000312..."
	tenths := int(s[0]-'0')*1000 + int(s[2]-'0')*100 + int(s[3]-'0')*10 + int(s[4]-'0')
	if s[5] > '5' || s[5] == '5' && (len(bytes.TrimRight(s[6:], "0")) > 0 || tenths%2 == 1) {
		tenths++
	}
	return strconv.Itoa(tenths/10) + "." + string(rune('0'+tenths%10)) + "%"
}

// plainPercent reports whether p writes shares as tenthsPercent does.
func plainPercent(p *message.Printer) bool {
	for _, f := range []float64{0, 0.0015, 0.0045, 0.0085, 0.1245, 0.6364, 0.99951, 1} {
		if p.Sprint(number.Percent(f, number.Scale(1))) != tenthsPercent(f) {
			return false
		}
	}
	return true
}

// Clock writes a time as the dashboard shows it: UTC, with the date only
// when it is not today.
func (l *Locale) Clock(t time.Time) string {
	t = t.UTC()
	if t.Format(time.DateOnly) != time.Now().UTC().Format(time.DateOnly) {
		return t.Format(l.clock)
	}
	return t.Format("15:04:05 UTC")
}

// text is T for a message id written in the code: NewLocales checked
// that every language has it, so it fails only for a mistyped id, and
// then shows the id, which the tests look for on every page.
func (l *Locale) text(id string, args ...any) string {
	s, err := l.T(id, args...)
	if err != nil {
		return id
	}
	return s
}

// plainCall matches {{t "id"}}: a message without arguments.
var plainCall = regexp.MustCompile(`\{\{t "([a-z0-9_.]+)"\}\}`)

// inline returns the templates of views with every {{t "id"}} of a message
// without arguments replaced by its text, HTML-escaped: the page chrome is
// then plain template text, as it was before it was translated, instead of
// some twenty function calls (each eight allocations by reflection) per
// page. The messages are plain text and stand only in HTML text and quoted
// attributes, where that escaping is html/template's own. Other calls, and
// an unknown id, are left for the template func t.
func (l *Locale) inline(views fs.FS) (fs.FS, error) {
	out := fstest.MapFS{} // the standard library's in-memory fs.FS; parsed once, at start
	err := fs.WalkDir(views, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		src, err := fs.ReadFile(views, name)
		if err != nil {
			return err
		}
		src = plainCall.ReplaceAllFunc(src, func(call []byte) []byte {
			if s, ok := l.plain[string(plainCall.FindSubmatch(call)[1])]; ok {
				return []byte(html.EscapeString(s))
			}
			return call
		})
		out[name] = &fstest.MapFile{Data: src, Mode: 0o444}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("templates in %s: %w", l.Code, err)
	}
	return out, nil
}

// userError is a refusal a user reads: a status and a message id (with
// its arguments) that the error handler translates.
type userError struct {
	status int
	id     string
	args   []any
	cause  error // for the log; nil when the message says it all
}

// refuse returns the userError for status and message id.
func refuse(status int, id string, args ...any) error {
	return &userError{status: status, id: id, args: args}
}

func (e *userError) Error() string {
	s := e.id
	if len(e.args) > 0 {
		s += " " + fmt.Sprint(e.args...)
	}
	if e.cause != nil {
		s += ": " + e.cause.Error()
	}
	return s
}

func (e *userError) Unwrap() error { return e.cause }

// localeKey is where the locale middleware leaves the request's language.
const localeKey = "locale"

// lang is a Locale with the templates that speak it.
type lang struct {
	*Locale
	views   fiber.Views
	locales *Locales // all of them, for the switcher
}

// langOf returns the language the request is served in.
func langOf(c *fiber.Ctx) *lang {
	if l, ok := c.Locals(localeKey).(*lang); ok {
		return l
	}
	// Before the locale middleware ran (it runs for every route): the
	// app's default templates, which speak the default language.
	return c.App().Config().Views.(*viewSet).langs[0]
}

// negotiate picks each request's language. Pages depend on it, so answers
// vary by Accept-Language and by Cookie (the switcher's choice).
func negotiate(ls *Locales, langs []*lang) fiber.Handler {
	return func(c *fiber.Ctx) error {
		l := ls.Pick(c.Cookies(langCookie), c.Get(headerAcceptLanguage))
		c.Locals(localeKey, langs[l.Index])
		c.Vary(headerAcceptLanguage, fiber.HeaderCookie)
		return c.Next()
	}
}

// switchLang handles GET /lang/:code?next=: the switcher's plain link.
// It remembers the choice in a cookie and goes back to next, on this site.
func switchLang(ls *Locales, secure bool) fiber.Handler {
	return func(c *fiber.Ctx) error {
		l, ok := ls.Lookup(c.Params("code"))
		if !ok {
			return refuse(fiber.StatusNotFound, "error.unknown_language")
		}
		c.Cookie(&fiber.Cookie{
			Name: langCookie, Value: l.Code, Path: "/", MaxAge: 365 * 24 * 3600,
			HTTPOnly: true, SameSite: fiber.CookieSameSiteLaxMode, Secure: secure,
		})
		c.Set(fiber.HeaderCacheControl, "no-store")
		return c.Redirect(localPath(utils.CopyString(c.Query("next")), "/"), fiber.StatusSeeOther)
	}
}

// switchURL is the switcher's link to language code from the page at here.
func switchURL(code, here string) string {
	return "/lang/" + code + "?next=" + url.QueryEscape(here)
}

// langFuncs are the template funcs that speak l.
func langFuncs(l *Locale) map[string]any {
	return map[string]any{
		"t":      l.T,
		"num":    l.Count,
		"signed": l.Change,
		"price":  l.Price,
		"pct":    l.Percent,
		"rate":   l.Rate,
		"clock":  l.Clock,
		"lang":   func() string { return l.Code },
		// tr picks a catalog text in this language, else its English.
		"tr": func(n store.Names, english string) string { return n.In(l.Code, english) },
		"productRows": func(rows []store.ProductRow, q dashboardQuery) (template.HTML, error) {
			return productRows(l, rows, q)
		},
	}
}
