package loadtest

import (
	"fmt"
	"io"
	"math"
	"strings"
	"time"
	"unicode/utf8"
)

// Table is a small table printed as aligned text (terminal) or Markdown (docs).
type Table struct {
	Columns []string
	Rows    [][]string
}

// NewTable returns a table with the given column headers.
func NewTable(columns ...string) *Table { return &Table{Columns: columns} }

// Add appends a row; missing cells are empty, extra cells are an error at write time.
func (t *Table) Add(cells ...string) { t.Rows = append(t.Rows, cells) }

func (t *Table) check() error {
	for i, r := range t.Rows {
		if len(r) > len(t.Columns) {
			return fmt.Errorf("table row %d has %d cells for %d columns", i+1, len(r), len(t.Columns))
		}
	}
	return nil
}

func cell(r []string, i int) string {
	if i < len(r) {
		return r[i]
	}
	return ""
}

// WriteText writes the table with columns padded to their widest cell (in runes),
// numbers and text alike left-aligned, a dashed rule under the header.
func (t *Table) WriteText(w io.Writer) error {
	if err := t.check(); err != nil {
		return err
	}
	width := make([]int, len(t.Columns))
	for i, c := range t.Columns {
		width[i] = utf8.RuneCountInString(c)
		for _, r := range t.Rows {
			width[i] = max(width[i], utf8.RuneCountInString(cell(r, i)))
		}
	}
	var b strings.Builder
	line := func(cells func(i int) string) {
		for i := range t.Columns {
			c := cells(i)
			b.WriteString(c)
			if i < len(t.Columns)-1 {
				b.WriteString(strings.Repeat(" ", width[i]-utf8.RuneCountInString(c)+2))
			}
		}
		b.WriteByte('\n')
	}
	line(func(i int) string { return t.Columns[i] })
	line(func(i int) string { return strings.Repeat("-", width[i]) })
	for _, r := range t.Rows {
		line(func(i int) string { return cell(r, i) })
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteMarkdown writes a GitHub-flavoured Markdown table.
func (t *Table) WriteMarkdown(w io.Writer) error {
	if err := t.check(); err != nil {
		return err
	}
	esc := strings.NewReplacer("|", `\|`, "\n", " ")
	var b strings.Builder
	row := func(cells func(i int) string) {
		b.WriteString("|")
		for i := range t.Columns {
			b.WriteString(" " + esc.Replace(cells(i)) + " |")
		}
		b.WriteByte('\n')
	}
	row(func(i int) string { return t.Columns[i] })
	row(func(int) string { return "---" })
	for _, r := range t.Rows {
		row(func(i int) string { return cell(r, i) })
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// FormatDuration prints a latency with three significant digits in a fixed unit
// family: "850µs", "4.21ms", "1.20s".
func FormatDuration(d time.Duration) string {
	if d < 0 && d != math.MinInt64 {
		return "-" + FormatDuration(-d)
	}
	switch {
	case d < time.Microsecond:
		return fmt.Sprintf("%dns", d.Nanoseconds())
	case d < time.Millisecond:
		return trimUnit(float64(d)/float64(time.Microsecond), "µs")
	case d < time.Second:
		return trimUnit(float64(d)/float64(time.Millisecond), "ms")
	}
	return trimUnit(d.Seconds(), "s")
}

func trimUnit(v float64, unit string) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f%s", v, unit)
	case v >= 10:
		return fmt.Sprintf("%.1f%s", v, unit)
	}
	return fmt.Sprintf("%.2f%s", v, unit)
}

// FormatBytes prints a size in binary units: "512 B", "37.4 MiB".
func FormatBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, i := float64(n)/unit, 0
	for v >= unit && i < 4 {
		v /= unit
		i++
	}
	return fmt.Sprintf("%.1f %ciB", v, "KMGTP"[i])
}

// Rate prints n per second over d: "198.7/s".
func Rate(n uint64, d time.Duration) string {
	if d <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f/s", float64(n)/d.Seconds())
}

// LatencyPath is one measured path (connect→pop, connect→CRM) with its p99 target.
type LatencyPath struct {
	Name      string
	Summary   Summary
	P99Target time.Duration // 0: no target
	Totals    LedgerTotals
}

// Met reports whether the path met its target: every expected notification delivered
// exactly once, none unexpected, and p99 within the target (when there is one).
func (p LatencyPath) Met() bool {
	t := p.Totals
	ok := t.Lost == 0 && t.Duplicates == 0 && t.Unexpected == 0
	if p.P99Target > 0 {
		ok = ok && p.Summary.Count > 0 && p.Summary.P99 <= p.P99Target
	}
	return ok
}

// Report is the summary of one load-test run.
type Report struct {
	Duration time.Duration
	Connects uint64 // connects the fake Asterisk produced
	Events   uint64 // AMI/ARI events it sent
	Agents   int    // websocket agents connected
	Paths    []LatencyPath
	Process  ProcessSummary
}

// Passed reports whether every path met its target.
func (r Report) Passed() bool {
	for _, p := range r.Paths {
		if !p.Met() {
			return false
		}
	}
	return len(r.Paths) > 0
}

// Tables returns the run table and the per-path table.
func (r Report) Tables() (run, paths *Table) {
	run = NewTable("duration", "connects", "connects/s", "events/s", "agents", "RSS max", "goroutines max")
	run.Add(r.Duration.Round(time.Millisecond).String(), fmt.Sprint(r.Connects), Rate(r.Connects, r.Duration),
		Rate(r.Events, r.Duration), fmt.Sprint(r.Agents), FormatBytes(r.Process.RSSMax), fmt.Sprint(r.Process.GoroutinesMax))

	paths = NewTable("path", "count", "p50", "p90", "p99", "p99.9", "max", "p99 target", "lost", "duplicated", "result")
	for _, p := range r.Paths {
		s, target := p.Summary, "-"
		if p.P99Target > 0 {
			target = "≤ " + FormatDuration(p.P99Target)
		}
		result := "PASS"
		if !p.Met() {
			result = "FAIL"
		}
		paths.Add(p.Name, fmt.Sprint(s.Count), FormatDuration(s.P50), FormatDuration(s.P90), FormatDuration(s.P99),
			FormatDuration(s.P999), FormatDuration(s.Max), target, fmt.Sprint(p.Totals.Lost),
			fmt.Sprint(p.Totals.Duplicates+p.Totals.Unexpected), result)
	}
	return run, paths
}

// WriteText prints the report for a terminal.
func (r Report) WriteText(w io.Writer) error {
	run, paths := r.Tables()
	if err := run.WriteText(w); err != nil {
		return err
	}
	if _, err := io.WriteString(w, "\n"); err != nil {
		return err
	}
	return paths.WriteText(w)
}

// WriteMarkdown prints the report for docs/benchmarks.md.
func (r Report) WriteMarkdown(w io.Writer) error {
	run, paths := r.Tables()
	if err := run.WriteMarkdown(w); err != nil {
		return err
	}
	if _, err := io.WriteString(w, "\n"); err != nil {
		return err
	}
	return paths.WriteMarkdown(w)
}
