package handlers

import (
	"bytes"
	"fmt"
	"html/template"
	"io"
	"maps"
	"strings"
	"sync"

	"github.com/gofiber/fiber/v2"

	"phoenix/store"
)

// The templates cut up as cards are: one product card in a grid, and a
// Like's answer (its button, and the swap that clears a notice).
const (
	cardTemplate       = "partials/product-card"
	likeResultTemplate = "partials/like-result"
)

// cards renders product cards without running html/template for each one.
// Executing partials/product-card 48 times cost about 5 ms of CPU per
// catalog page, nearly all of it reflection. The catalog never changes, so
// each product's card is rendered once per form (liked or not, count known
// or not, with or without a CSRF field) with marker values in place of the
// per-request parts; the output is cut at the markers and, per request, the
// pieces are joined around the real values. The template stays the only
// description of the markup; the per-request strings are escaped as
// html/template escapes them in that attribute context (escapeHTML;
// TestCards_MatchTemplate compares the two).
//
// Each form of a card is cut on its first use, so that the work and the
// memory follow the pages shoppers view: a page of a 10,000-part catalog
// costs its own cards, never the catalog's.
//
// A Like's answer is cut the same way: through html/template it was about
// a quarter of the shop's CPU per Like (BENCHMARKS.md).
type cards struct {
	name     string             // the template: cardTemplate or likeResultTemplate
	products sync.Map           // product id -> *productCards
	num      func(int64) string // how the card's language writes its count
}

// productCards holds one product's cut-up card forms.
type productCards struct {
	forms [8]struct { // indexed by cardFormIndex
		once sync.Once
		form cardForm // nil when the cut failed
	}
}

// cardForm is a card's markup as text pieces and the slots between them.
type cardForm []cardPart

type cardPart struct {
	text string
	slot cardSlot // what follows text; slotNone for the last piece
}

type cardSlot int

const (
	slotNone cardSlot = iota
	slotNext
	slotCSRF
	slotCount
)

// Marker values rendered into the cached cards. Letters and digits only, so
// no escaper changes them; a product whose static text happened to contain
// one is detected by the slot count check and rendered by the template.
const (
	markNext  = "/phoenix-slot-next-9c4e7a"
	markCSRF  = "phoenixslotcsrf9c4e7a"
	markCount = int64(7305991246118213)
)

func cardFormIndex(liked, known, csrf bool) int {
	i := 0
	if liked {
		i |= 1
	}
	if known {
		i |= 2
	}
	if csrf {
		i |= 4
	}
	return i
}

// langCards holds the cards of each language and template (cardsKey ->
// *cards): a card holds text in its language, so each is cut once per
// language.
type langCards struct{ m sync.Map }

type cardsKey struct {
	locale *Locale
	name   string
}

// render writes the named template for each of products as HTML in the
// request's language.
func (lc *langCards) render(c *fiber.Ctx, name string, products []productView) (template.HTML, error) {
	l := langOf(c)
	key := cardsKey{l.Locale, name}
	k, ok := lc.m.Load(key)
	if !ok {
		k, _ = lc.m.LoadOrStore(key, &cards{name: name, num: l.Count})
	}
	return k.(*cards).render(l.views, products)
}

// render writes the cards of products as HTML.
func (k *cards) render(views fiber.Views, products []productView) (template.HTML, error) {
	var b strings.Builder
	var next, csrf, nextHTML, csrfHTML string
	for i, v := range products {
		if i == 0 || v.Next != next {
			next, nextHTML = v.Next, escapeHTML(v.Next)
		}
		if i == 0 || v.CSRF != csrf {
			csrf, csrfHTML = v.CSRF, escapeHTML(v.CSRF)
		}
		form := k.form(views, v)
		if form == nil {
			if err := k.renderWhole(&b, views, v); err != nil {
				return "", err
			}
			continue
		}
		for _, part := range form {
			b.WriteString(part.text)
			switch part.slot {
			case slotNext:
				b.WriteString(nextHTML)
			case slotCSRF:
				b.WriteString(csrfHTML)
			case slotCount:
				b.WriteString(k.num(v.Count))
			}
		}
	}
	// The pieces are html/template output and html/template escaped values.
	return template.HTML(b.String()), nil // #nosec G203 -- built from html/template output
}

// form returns the cut-up card for v, or nil when it must be rendered whole.
func (k *cards) form(views fiber.Views, v productView) cardForm {
	pc, ok := k.products.Load(v.ID)
	if !ok {
		pc, _ = k.products.LoadOrStore(v.ID, &productCards{})
	}
	liked, known, withCSRF := v.Liked, v.CountKnown, v.CSRF != ""
	f := &pc.(*productCards).forms[cardFormIndex(liked, known, withCSRF)]
	f.once.Do(func() { f.form = k.cutCard(views, v.Product, liked, known, withCSRF) })
	return f.form
}

// cutCard renders one form of p's card with markers and cuts it up; nil
// when the template fails (it then reports the error per request) or a
// marker turns up elsewhere than in its slot.
func (k *cards) cutCard(views fiber.Views, p store.Product, liked, known, withCSRF bool) cardForm {
	v := productView{Product: p, Liked: liked, CountKnown: known, Next: markNext}
	want := map[cardSlot]int{slotNext: 1}
	if known {
		v.Count = markCount
		want[slotCount] = 1
	}
	if withCSRF {
		v.CSRF = markCSRF
		want[slotCSRF] = 1
	}
	var b bytes.Buffer
	if err := k.renderWhole(&b, views, v); err != nil {
		return nil
	}
	form, got := cut(b.String(), k.num(markCount))
	if !maps.Equal(got, want) {
		return nil
	}
	return form
}

// cut splits s at the markers, count being markCount as written in s, and
// counts the slots found.
func cut(s, count string) (cardForm, map[cardSlot]int) {
	marks := []struct {
		text string
		slot cardSlot
	}{{markNext, slotNext}, {markCSRF, slotCSRF}, {count, slotCount}}
	var form cardForm
	found := map[cardSlot]int{}
	for {
		at, text, slot := -1, "", slotNone
		for _, m := range marks {
			if i := strings.Index(s, m.text); i >= 0 && (at < 0 || i < at) {
				at, text, slot = i, m.text, m.slot
			}
		}
		if at < 0 {
			return append(form, cardPart{text: s}), found
		}
		form = append(form, cardPart{text: s[:at], slot: slot})
		found[slot]++
		s = s[at+len(text):]
	}
}

// renderWhole renders v through the template itself.
func (k *cards) renderWhole(w io.Writer, views fiber.Views, v productView) error {
	if err := views.Render(w, k.name, v); err != nil {
		return fmt.Errorf("render %s: %w", k.name, err)
	}
	return nil
}
