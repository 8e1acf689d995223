package load

import (
	"fmt"
	"html/template"
	"math"
	"strconv"
	"strings"
)

// Charts are drawn here as inline SVG, so report.html needs no script and
// no network, and reads the same in any browser or printed.

type series struct {
	name   string
	color  string
	dashed bool
	pts    [][2]float64
	labels []string // per point, for tooltips; nil: the x value
	legend string   // legend text (default name); dashed series have none
}

type tick struct {
	v     float64
	label string
}

type chart struct {
	title, xLabel, yLabel string
	yLog                  bool
	xTicks                []tick // nil: linear ticks from the data
	yFmt                  func(float64) string
	band                  [2]float64 // shaded x range (the timed window); zero: none
	bandLabel             string
	series                []series
}

var stepColors = map[string]string{
	stepLogin: "#7b61ff", stepPrepay: "#e8590c", stepPay: "#2b8a3e",
	stepPoll: "#1971c2", stepPaid: "#c2255c", stepCheckot: "#495057",
}

const (
	chW, chH               = 860, 300
	padL, padR, padT, padB = 64, 16, 48, 40
	plotW, plotH           = chW - padL - padR, chH - padT - padB
	minLogValue            = 0.001
	maxPointsWithMarkers   = 400
)

// svg renders the chart.
func (c *chart) svg() template.HTML {
	var b strings.Builder
	xmin, xmax := math.Inf(1), math.Inf(-1)
	ymin, ymax := math.Inf(1), math.Inf(-1)
	for _, s := range c.series {
		for _, p := range s.pts {
			xmin, xmax = math.Min(xmin, p[0]), math.Max(xmax, p[0])
			y := p[1]
			if c.yLog && y < minLogValue {
				y = minLogValue
			}
			ymin, ymax = math.Min(ymin, y), math.Max(ymax, y)
		}
	}
	fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 %d %d" xmlns="http://www.w3.org/2000/svg" role="img" aria-label="%s">`, chW, chH, template.HTMLEscapeString(c.title))
	fmt.Fprintf(&b, `<text x="%d" y="18" class="ct">%s</text>`, padL, template.HTMLEscapeString(c.title))
	if math.IsInf(xmin, 0) {
		fmt.Fprintf(&b, `<text x="%d" y="%d" class="muted">no samples</text></svg>`, chW/2-30, chH/2)
		return template.HTML(b.String())
	}
	if c.band[1] > c.band[0] {
		xmin, xmax = math.Min(xmin, c.band[0]), math.Max(xmax, c.band[1])
	}
	if xmax == xmin {
		xmax = xmin + 1
	}
	var yTicks []tick
	if c.yLog {
		lo := math.Floor(math.Log10(ymin))
		hi := math.Ceil(math.Log10(ymax))
		if hi == lo {
			hi++
		}
		ymin, ymax = math.Pow(10, lo), math.Pow(10, hi)
		for e := lo; e <= hi; e++ {
			yTicks = append(yTicks, tick{math.Pow(10, e), c.yFmt(math.Pow(10, e))})
		}
	} else {
		ymin = 0
		step := niceStep(ymax / 5)
		ymax = math.Max(step, math.Ceil(ymax*1.05/step)*step)
		for v := 0.0; v <= ymax+step/2; v += step {
			yTicks = append(yTicks, tick{v, c.yFmt(v)})
		}
	}
	sx := func(x float64) float64 { return padL + (x-xmin)/(xmax-xmin)*plotW }
	sy := func(y float64) float64 {
		if c.yLog {
			y = math.Max(y, minLogValue)
			return padT + plotH - (math.Log10(y)-math.Log10(ymin))/(math.Log10(ymax)-math.Log10(ymin))*plotH
		}
		return padT + plotH - (y-ymin)/(ymax-ymin)*plotH
	}
	if c.band[1] > c.band[0] {
		fmt.Fprintf(&b, `<rect x="%.1f" y="%d" width="%.1f" height="%d" class="band"><title>%s</title></rect>`,
			sx(c.band[0]), padT, sx(c.band[1])-sx(c.band[0]), plotH, template.HTMLEscapeString(c.bandLabel))
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" class="muted small">%s</text>`, sx(c.band[0])+4, padT+12, template.HTMLEscapeString(c.bandLabel))
	}
	for _, t := range yTicks {
		y := sy(t.v)
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" class="grid"/><text x="%d" y="%.1f" class="yl">%s</text>`,
			padL, padL+plotW, y, y, padL-6, y+4, template.HTMLEscapeString(t.label))
	}
	xt := c.xTicks
	if xt == nil {
		step := niceStep((xmax - xmin) / 8)
		for v := math.Ceil(xmin/step) * step; v <= xmax+1e-9; v += step {
			xt = append(xt, tick{v, strconv.FormatFloat(v, 'f', -1, 64)})
		}
	}
	for _, t := range xt {
		x := sx(t.v)
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%d" y2="%d" class="axis"/><text x="%.1f" y="%d" class="xl">%s</text>`,
			x, x, padT+plotH, padT+plotH+4, x, padT+plotH+16, template.HTMLEscapeString(t.label))
	}
	fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%d" y2="%d" class="axis"/>`, padL, padL+plotW, padT+plotH, padT+plotH)
	fmt.Fprintf(&b, `<text x="%d" y="%d" class="muted small" text-anchor="middle">%s</text>`, padL+plotW/2, chH-4, template.HTMLEscapeString(c.xLabel))
	fmt.Fprintf(&b, `<text transform="translate(14 %d) rotate(-90)" class="muted small" text-anchor="middle">%s</text>`, padT+plotH/2, template.HTMLEscapeString(c.yLabel))
	lx := padL
	for _, s := range c.series {
		if len(s.pts) == 0 {
			continue
		}
		var d strings.Builder
		for i, p := range s.pts {
			if i == 0 {
				fmt.Fprintf(&d, "M%.1f %.1f", sx(p[0]), sy(p[1]))
			} else {
				fmt.Fprintf(&d, "L%.1f %.1f", sx(p[0]), sy(p[1]))
			}
		}
		dash := ""
		if s.dashed {
			dash = ` stroke-dasharray="5 4"`
		}
		fmt.Fprintf(&b, `<path d="%s" fill="none" stroke="%s" stroke-width="1.8"%s/>`, d.String(), s.color, dash)
		if len(s.pts) <= maxPointsWithMarkers {
			for i, p := range s.pts {
				at := c.xFmt(p[0])
				if i < len(s.labels) {
					at = s.labels[i]
				}
				fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="2.2" fill="%s"><title>%s: %s at %s</title></circle>`,
					sx(p[0]), sy(p[1]), s.color, template.HTMLEscapeString(s.name), template.HTMLEscapeString(c.yFmt(p[1])), template.HTMLEscapeString(at))
			}
		}
		if !s.dashed {
			name := s.legend
			if name == "" {
				name = s.name
			}
			fmt.Fprintf(&b, `<rect x="%d" y="26" width="10" height="10" fill="%s"/><text x="%d" y="35" class="small">%s</text>`, lx, s.color, lx+14, template.HTMLEscapeString(name))
			lx += 14 + 7*len(name) + 14
		}
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

func (c *chart) xFmt(x float64) string {
	return strconv.FormatFloat(x, 'f', 1, 64) + " " + c.xLabel
}

// niceStep rounds a raw step up to 1, 2 or 5 times a power of ten.
func niceStep(raw float64) float64 {
	if raw <= 0 || math.IsNaN(raw) || math.IsInf(raw, 0) {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if raw <= m*p {
			return m * p
		}
	}
	return 10 * p
}

// fmtLatency formats milliseconds for axes and tooltips.
func fmtLatency(v float64) string {
	switch {
	case v >= 1000:
		return strconv.FormatFloat(v/1000, 'g', 3, 64) + " s"
	case v >= 1:
		return strconv.FormatFloat(v, 'g', 3, 64) + " ms"
	}
	return strconv.FormatFloat(v*1000, 'g', 3, 64) + " µs"
}

func fmtCount(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

// nines maps a percentile to the spectrum's x axis: 90 → 1, 99 → 2, …
func nines(p float64) float64 {
	if p >= 100 {
		return 5.3
	}
	return math.Min(5.3, -math.Log10(1-p/100))
}

// charts builds the report's charts from a result.
func charts(r *Result) []template.HTML {
	band := [2]float64{r.Window.Start, r.Window.End}
	tp := chart{title: "Throughput over time (completed requests per second, by step)", xLabel: "s since start", yLabel: "per second",
		yFmt: fmtCount, band: band, bandLabel: "timed window"}
	lat := chart{title: "Latency over time (p99 solid, p50 dashed, per second)", xLabel: "s since start", yLabel: "latency", yLog: true,
		yFmt: fmtLatency, band: band, bandLabel: "timed window"}
	dist := chart{title: "Latency distribution (percentile spectrum, whole run)", xLabel: "percentile", yLabel: "latency", yLog: true,
		yFmt: fmtLatency, xTicks: []tick{{0, "0%"}, {1, "90%"}, {2, "99%"}, {3, "99.9%"}, {4, "99.99%"}, {5, "99.999%"}}}
	for _, s := range r.Steps {
		col := stepColors[s.Name]
		var pts, p99, p50 [][2]float64
		per := 1.0
		if len(s.Series) > 1 {
			per = s.Series[1].T - s.Series[0].T
		}
		for _, p := range s.Series {
			pts = append(pts, [2]float64{p.T, round3(float64(p.Count) / math.Max(per, 0.001))})
			if p.Count > 0 {
				p99 = append(p99, [2]float64{p.T, p.P99})
				p50 = append(p50, [2]float64{p.T, p.P50})
			}
		}
		tp.series = append(tp.series, series{name: s.Name, color: col, pts: pts})
		lat.series = append(lat.series, series{name: s.Name + " p99", legend: s.Name, color: col, pts: p99}, series{name: s.Name + " p50", color: col, dashed: true, pts: p50})
		var d [][2]float64
		var labels []string
		for _, q := range s.Distribution {
			d = append(d, [2]float64{nines(q.Percentile), q.Ms})
			labels = append(labels, "p"+strconv.FormatFloat(q.Percentile, 'f', -1, 64))
		}
		dist.series = append(dist.series, series{name: s.Name, color: col, pts: d, labels: labels})
	}
	return []template.HTML{tp.svg(), lat.svg(), dist.svg()}
}
