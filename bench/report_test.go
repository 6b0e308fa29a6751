package main

import (
	"strings"
	"testing"
	"time"
)

func TestReplaceSection(t *testing.T) {
	section := beginMarker + "\nnew\n" + endMarker + "\n"
	tests := []struct{ name, doc, want string }{
		{"empty", "", section},
		{"no markers", "# Benchmarks\n\nnotes\n", "# Benchmarks\n\nnotes\n\n" + section},
		{
			"markers",
			"# Benchmarks\n\n" + beginMarker + "\nold\n" + endMarker + "\n\nkept notes\n",
			"# Benchmarks\n\n" + section + "\nkept notes\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := replaceSection(tt.doc, section); got != tt.want {
				t.Errorf("got\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
}

func TestFormat(t *testing.T) {
	tests := []struct{ got, want string }{
		{formatRate(1234567.4), "1,234,567"},
		{formatRate(999), "999"},
		{formatLatency(1500 * time.Microsecond), "1.500 ms"},
		{formatAdded(-250 * time.Microsecond), "−0.250 ms"},
		{formatAdded(250 * time.Microsecond), "+0.250 ms"},
		{formatBytes(20 << 20), "20.0 MiB"},
		{formatPercent(1), "100%"},
		{formatPercent(0.99), "99.00%"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}

func TestMarkdown(t *testing.T) {
	fast := func(d time.Duration) *Measurement {
		m := &Measurement{Requests: 2, OK: 2, Elapsed: time.Second, Errors: map[string]int{}}
		m.latencies = []time.Duration{d, d}
		return m
	}
	r := &Report{Date: time.Unix(0, 0), Settings: Settings{Duration: time.Second, Rate: 500, Workers: 8}}
	for _, mode := range Modes {
		for i, server := range []string{"direct", "proxy", "gateway"} {
			d := time.Duration(i+1) * time.Millisecond
			r.Rows = append(r.Rows, Row{Mode: mode, Server: server, Saturation: fast(d), Fixed: fast(d)})
		}
	}
	md := r.Markdown()
	for _, want := range []string{
		"| gateway | +2.000 ms (+2.000 ms) | +2.000 ms (+2.000 ms) |",
		"| proxy | +1.000 ms (+1.000 ms) | +1.000 ms (+1.000 ms) |",
		"### Streaming calls",
		"| direct | 2 | 100% | 1.000 ms | 1.000 ms | — | — | 0 of 2 |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
}
