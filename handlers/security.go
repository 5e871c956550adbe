package handlers

import "github.com/gofiber/fiber/v2"

// clientIP is the client's address: the proxy header's when the request
// came from a trusted proxy (see AppConfig.ProxyHeader), else the peer's.
func clientIP(c *fiber.Ctx) string { return c.IP() }
