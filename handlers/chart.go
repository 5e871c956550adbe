package handlers

import (
	"fmt"
	"strconv"
	"strings"

	"phoenix/store"
)

// The likes-per-minute chart is drawn on the server as SVG: no chart library,
// nothing for the client to run. Sizes are in viewBox units; CSS scales the
// SVG to its container.
const (
	chartWidth   = 720
	chartHeight  = 220
	chartLeft    = 44 // room for the y labels
	chartRight   = 8
	chartTop     = 10
	chartBottom  = 24 // room for the x labels
	chartBarGap  = 2
	chartYTicks  = 4
	chartXLabels = 10 // minutes between x labels
)

// chart is what partials/chart draws.
type chart struct {
	Width, Height          int
	Left, Top, Right, Base float64 // the plot area: x from Left to Right, y from Top down to Base
	Bars                   []chartBar
	Unlikes                string // polyline points of unlikes per minute
	YTicks, XTicks         []chartTick
	Likes, UnlikesTotal    int64
	Peak                   int64
}

// chartBar is one minute's bar.
type chartBar struct {
	X, Y, W, H     float64
	Time           string // "14:03", in UTC, for its title
	Likes, Unlikes int64
}

// chartTick is one axis label and its grid line or tick mark.
type chartTick struct {
	X, Y           float64 // where the line or mark is
	LabelX, LabelY float64 // where the label is
	Label          string
}

// newChart lays out a series of minutes as bars of likes and a line of
// unlikes, with a y axis scaled to a round number.
func newChart(series []store.Minute) chart {
	ch := chart{Width: chartWidth, Height: chartHeight, Left: chartLeft, Top: chartTop,
		Right: chartWidth - chartRight, Base: chartHeight - chartBottom}
	for _, m := range series {
		ch.Likes += m.Likes
		ch.UnlikesTotal += m.Unlikes
		ch.Peak = max(ch.Peak, m.Likes, m.Unlikes)
	}
	top := niceCeil(ch.Peak)
	scale := (ch.Base - ch.Top) / float64(top)
	for i := 0; i <= chartYTicks; i++ {
		v := top * int64(i) / chartYTicks
		y := round1(ch.Base - float64(v)*scale)
		ch.YTicks = append(ch.YTicks, chartTick{X: ch.Left, Y: y, LabelX: ch.Left - 6, LabelY: y + 4, Label: strconv.FormatInt(v, 10)})
	}
	if len(series) == 0 {
		return ch
	}
	step := (ch.Right - ch.Left) / float64(len(series))
	points := make([]string, 0, len(series))
	for i, m := range series {
		x := ch.Left + float64(i)*step
		h := float64(m.Likes) * scale
		ch.Bars = append(ch.Bars, chartBar{
			X: round1(x + chartBarGap/2), Y: round1(ch.Base - h), W: round1(step - chartBarGap), H: round1(h),
			Time: m.At.UTC().Format("15:04"), Likes: m.Likes, Unlikes: m.Unlikes,
		})
		points = append(points, fmt.Sprintf("%g,%g", round1(x+step/2), round1(ch.Base-float64(m.Unlikes)*scale)))
		if m.At.Minute()%chartXLabels == 0 {
			mid := round1(x + step/2)
			ch.XTicks = append(ch.XTicks, chartTick{X: mid, Y: ch.Base, LabelX: mid, LabelY: ch.Base + 16, Label: m.At.UTC().Format("15:04")})
		}
	}
	if ch.UnlikesTotal > 0 {
		ch.Unlikes = strings.Join(points, " ")
	}
	return ch
}

// niceCeil returns the top of the y axis: chartYTicks times a round step
// (1, 2, 2.5 or 5 times a power of ten), at least n.
func niceCeil(n int64) int64 {
	for p := int64(1); ; p *= 10 {
		for _, m := range []int64{10, 20, 25, 50} {
			if step := m * p / 10; step > 0 && step*chartYTicks >= n {
				return step * chartYTicks
			}
		}
	}
}

func round1(f float64) float64 {
	return float64(int64(f*10+0.5)) / 10
}
