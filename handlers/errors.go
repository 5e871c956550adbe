package handlers

import (
	"errors"
	"log/slog"

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
// sentinels, refusals (refuse) and *fiber.Error to a status and a message
// in the request's language, logs 5xx at Error and 4xx at Warn, and renders
// the error page, or for htmx a notice swapped into #flash so the control
// that failed stays as it was.
func ErrorHandler(log *slog.Logger, layout func(*fiber.Ctx, string) layoutData) fiber.ErrorHandler {
	return func(c *fiber.Ctx, err error) error {
		status, id, args := classify(err)
		msg := langOf(c).text(id, args...)
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

// classify returns the status and the message (id and arguments) a user
// should read.
func classify(err error) (status int, id string, args []any) {
	var (
		fe *fiber.Error
		ue *userError
	)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return fiber.StatusNotFound, "error.part_not_found", nil
	case errors.Is(err, store.ErrUnavailable):
		return fiber.StatusServiceUnavailable, "error.like_unavailable", nil
	case errors.As(err, &ue):
		return ue.status, ue.id, ue.args
	case errors.As(err, &fe):
		switch {
		case fe.Code == fiber.StatusNotFound:
			return fe.Code, "error.page_not_found", nil
		case fe.Code == fiber.StatusMethodNotAllowed:
			return fe.Code, "error.method", nil
		case fe.Code == fiber.StatusRequestEntityTooLarge:
			return fe.Code, "error.too_large", nil
		case fe.Code == fiber.StatusTooManyRequests:
			return fe.Code, "error.too_many_requests", nil
		case fe.Code < 500:
			// Fiber's own refusals (a malformed request) say it in English.
			return fe.Code, "error.bad_request", nil
		}
		return fe.Code, "error.internal", nil
	}
	return fiber.StatusInternalServerError, "error.internal", nil
}
