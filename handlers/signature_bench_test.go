package handlers

import (
	"testing"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"
)

// BenchmarkLike_Signatures measures what signing adds to one protected
// Like, in process: verifying the shopper cookie, checking the CSRF token
// bound to it, and making the token of the answer's button. Compare with
// BenchmarkShop_Like's time per Like.
func BenchmarkLike_Signatures(b *testing.B) {
	secret := []byte("a-bench-secret-that-is-at-least-32-bytes")
	shoppers, err := NewShoppers(secret)
	if err != nil {
		b.Fatal(err)
	}
	csrf, err := NewCSRF(secret, "shop")
	if err != nil {
		b.Fatal(err)
	}
	const id = "0123456789abcdef0123456789abcdef"
	cookie, token := shoppers.cookie(id), csrf.Token(id)
	app := fiber.New()
	c := app.AcquireCtx(&fasthttp.RequestCtx{})
	defer app.ReleaseCtx(c)
	c.Request().Header.SetMethod(fiber.MethodPost)
	c.Request().Header.Set(csrfHeader, token)
	b.ReportAllocs()
	for b.Loop() {
		got, ok := shoppers.verify(cookie)
		if !ok {
			b.Fatal("cookie refused")
		}
		if err := csrf.Check(c, got); err != nil {
			b.Fatal(err)
		}
		_ = csrf.Token(got)
	}
}
