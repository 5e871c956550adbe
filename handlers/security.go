package handlers

import (
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/limiter"
)

// clientIP is the client's address: the proxy header's when the request
// came from a trusted proxy (see AppConfig.ProxyHeader), else the peer's.
func clientIP(c *fiber.Ctx) string { return c.IP() }

// LoginLimitConfig configures LoginLimiter.
type LoginLimitConfig struct {
	Max    int           // failed attempts allowed per client address and Window
	Window time.Duration // how long failures are remembered
	// Storage shares the count between replicas; nil counts in this process.
	Storage fiber.Storage
}

// LoginLimiter limits failed logins per client address with Fiber's limiter
// (only answers with a status >= 400 count). It returns two handlers to put
// before the login handler, the second of which turns the handler's error
// into its response so the limiter sees the final status:
//
//	r.Post("/login", append(handlers.LoginLimiter(cfg), h.Login)...)
func LoginLimiter(cfg LoginLimitConfig) []fiber.Handler {
	lim := limiter.New(limiter.Config{
		Max:                    cfg.Max,
		Expiration:             cfg.Window,
		KeyGenerator:           clientIP,
		Storage:                cfg.Storage,
		SkipSuccessfulRequests: true,
		LimitReached: func(c *fiber.Ctx) error {
			secs, _ := strconv.Atoi(c.GetRespHeader(fiber.HeaderRetryAfter))
			return refuse(fiber.StatusTooManyRequests, "error.too_many_logins", secs)
		},
	})
	respond := func(c *fiber.Ctx) error {
		if err := c.Next(); err != nil {
			return c.App().ErrorHandler(c, err)
		}
		return nil
	}
	return []fiber.Handler{lim, respond}
}
