package handlers

import (
	"errors"
	"log/slog"
	"strings"

	"github.com/gofiber/fiber/v2"

	"phoenix/store"
)

// errorPage is the data of pages/error and partials/error.
type errorPage struct {
	layoutData
	Status  int
	Message string
}

// ErrorHandler is the one place where errors become responses. It maps store
// sentinels and *fiber.Error to a status, logs 5xx at Error and 4xx at Warn,
// and renders the error page, or for htmx a notice swapped into #flash so the
// control that failed stays as it was.
func ErrorHandler(log *slog.Logger, layout func(*fiber.Ctx, string) layoutData) fiber.ErrorHandler {
	return func(c *fiber.Ctx, err error) error {
		status, msg := classify(err)
		attrs := []any{"request_id", requestID(c), "status", status, "method", c.Method(), "path", c.Path(), "err", err}
		if status >= 500 {
			log.Error("request failed", attrs...)
		} else {
			log.Warn("request refused", attrs...)
		}
		c.Status(status)
		c.Vary(hxRequest)
		data := errorPage{layoutData: layout(c, msg), Status: status, Message: msg}
		if isFragment(c) {
			c.Set(hxRetarget, "#flash")
			c.Set(hxReswap, "innerHTML")
			err = execute(c, "partials/error", data)
		} else {
			err = renderPage(c, "pages/error", data)
		}
		if err != nil {
			// The templates themselves failed: fall back to plain text.
			log.Error("render error page", "err", err)
			c.Set(fiber.HeaderContentType, fiber.MIMETextPlainCharsetUTF8)
			return c.Status(status).SendString(msg)
		}
		return nil
	}
}

// classify returns the status and the message a user should read.
func classify(err error) (int, string) {
	var fe *fiber.Error
	switch {
	case errors.Is(err, store.ErrNotFound):
		return fiber.StatusNotFound, "We could not find that part."
	case errors.Is(err, store.ErrUnavailable):
		return fiber.StatusServiceUnavailable, "Could not save your like, please retry in a moment."
	case errors.As(err, &fe):
		switch fe.Code {
		case fiber.StatusNotFound:
			// Fiber's router says "Cannot GET /path"; a handler's own
			// message (a page past the last) says more than the default.
			if !strings.HasPrefix(fe.Message, "Cannot ") {
				return fe.Code, fe.Message
			}
			return fe.Code, "We could not find that page."
		case fiber.StatusMethodNotAllowed:
			return fe.Code, "That method is not allowed here."
		case fiber.StatusRequestEntityTooLarge:
			return fe.Code, "That request is too large."
		}
		if fe.Code >= 500 && fe.Code != fiber.StatusServiceUnavailable { // a 503 says what to wait for
			return fe.Code, "Something went wrong on our side. Please retry."
		}
		return fe.Code, fe.Message
	}
	return fiber.StatusInternalServerError, "Something went wrong on our side. Please retry."
}
