package handlers

import (
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/utils"

	"phoenix/store"
)

// demoPage is pages/demo: the demo controls and the flow view that shows
// what they do.
type demoPage struct {
	layoutData
	Flow    flowView
	Message string // the message id of the last action's outcome
}

// demoRoutes registers the demo controls (PHOENIX_DEMO_CONTROLS), behind the
// session like every admin route, and CSRF on each change.
func (h *Admin) demoRoutes(r fiber.Router, protect fiber.Handler) {
	r.Get("/admin/demo", h.DemoPage)
	r.Post("/admin/demo/controls", protect, h.SetControl)
	r.Post("/admin/demo/controls/:id/end", protect, h.EndControl)
}

// DemoPage handles GET /admin/demo.
func (h *Admin) DemoPage(c *fiber.Ctx) error {
	c.Set(fiber.HeaderCacheControl, "no-store")
	return render(c, "pages/demo", demoPage{layoutData: h.layout(c, langOf(c).text("demo.title")),
		Flow: h.flow(c.UserContext()), Message: demoMessages[c.Query("done")]})
}

// demoMessages are the outcomes a redirect back to the page may name.
var demoMessages = map[string]string{"set": "demo.done_set", "ended": "demo.done_ended"}

// SetControl handles POST /admin/demo/controls (target, effect, rate in
// percent, latency in ms, duration in seconds): a control that ends by
// itself, recorded with who set it.
func (h *Admin) SetControl(c *fiber.Ctx) error {
	ctl, err := parseControl(c, h.dash().Now())
	if err != nil {
		return err
	}
	ctl.SetBy, ctl.RequestID = utils.CopyString(c.IP()), requestID(c)
	if ctl, err = h.Stats.SetControl(c.UserContext(), ctl); err != nil {
		return fiber.NewError(fiber.StatusServiceUnavailable, langOf(c).text("demo.unavailable"))
	}
	h.Log.Warn("demo control set", "control", ctl.ID, "target", ctl.Target, "effect", ctl.Effect, "rate", ctl.Rate,
		"latency", ctl.Latency.String(), "until", ctl.Until, "ip", ctl.SetBy, "request_id", ctl.RequestID)
	return c.Redirect("/admin/demo?done=set", fiber.StatusSeeOther)
}

// EndControl handles POST /admin/demo/controls/:id/end.
func (h *Admin) EndControl(c *fiber.Ctx) error {
	id, err := strconv.ParseInt(c.Params("id"), 10, 64)
	if err != nil || id < 1 {
		return fiber.NewError(fiber.StatusBadRequest, langOf(c).text("demo.bad_control"))
	}
	ended, err := h.Stats.EndControl(c.UserContext(), id)
	if err != nil {
		return fiber.NewError(fiber.StatusServiceUnavailable, langOf(c).text("demo.unavailable"))
	}
	if !ended { // unknown, or ended already (by itself, or by someone else)
		return fiber.NewError(fiber.StatusNotFound, langOf(c).text("demo.no_control"))
	}
	h.Log.Warn("demo control ended", "control", id, "ip", c.IP(), "request_id", requestID(c))
	return c.Redirect("/admin/demo?done=ended", fiber.StatusSeeOther)
}

// parseControl reads a control from the form: 400 for anything the store
// would refuse, and for durations outside store's bounds.
func parseControl(c *fiber.Ctx, now time.Time) (store.Control, error) {
	bad := func() (store.Control, error) {
		return store.Control{}, fiber.NewError(fiber.StatusBadRequest, langOf(c).text("demo.bad_control"))
	}
	rate, err := strconv.ParseFloat(c.FormValue("rate", "100"), 64)
	if err != nil {
		return bad()
	}
	latency, err := strconv.ParseInt(c.FormValue("latency", "0"), 10, 64)
	if err != nil || latency < 0 || latency > store.MaxLatency.Milliseconds() {
		return bad()
	}
	secs, err := strconv.ParseInt(c.FormValue("duration"), 10, 64)
	d := time.Duration(secs) * time.Second
	if err != nil || d < store.MinControlFor || d > store.MaxControlFor {
		return bad()
	}
	ctl := store.Control{Target: utils.CopyString(c.FormValue("target")), Effect: utils.CopyString(c.FormValue("effect")),
		Rate: rate / 100, Latency: time.Duration(latency) * time.Millisecond, Until: now.Add(d)}
	if ctl.Check() != nil {
		return bad()
	}
	return ctl, nil
}
