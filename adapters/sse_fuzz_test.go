package adapters

import (
	"bytes"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"testing/iotest"
)

// modelEvents is a plain reading of the framing EventReader implements:
// lines end at "\n"; a line empty but for "\r" and "\n" ends an event, or
// is dropped when no event has started; "data" values are joined by "\n",
// the last "event" value names the event; a final event cut short by the
// end of the stream is completed with newlines up to a blank line.
func modelEvents(in []byte) []event {
	var events []event
	var raw, name, data []byte
	hasData := false
	dispatch := func() {
		events = append(events, event{string(raw), string(name), string(data)})
		raw, name, data, hasData = nil, nil, nil, false
	}
	for len(in) > 0 {
		n := bytes.IndexByte(in, '\n') + 1
		if n == 0 {
			n = len(in)
		}
		line := in[:n]
		in = in[n:]
		content := bytes.TrimRight(line, "\r\n")
		if len(content) == 0 {
			if len(raw) > 0 {
				raw = append(raw, line...)
				dispatch()
			}
			continue
		}
		raw = append(raw, line...)
		field, value, _ := bytes.Cut(content, []byte(":"))
		value = bytes.TrimPrefix(value, []byte(" "))
		switch string(field) {
		case "data":
			if hasData {
				data = append(data, '\n')
			}
			data = append(data, value...)
			hasData = true
		case "event":
			name = append(name[:0:0], value...)
		}
	}
	if len(raw) > 0 {
		switch {
		case bytes.HasSuffix(raw, []byte("\n")):
			raw = append(raw, '\n')
		default:
			raw = append(raw, "\n\n"...)
		}
		dispatch()
	}
	return events
}

// FuzzEventReader checks EventReader against modelEvents on arbitrary
// streams: no panic, an end in a bounded number of calls, the same events,
// and for a well-formed stream (one that ends in a blank line and has no
// stray blank lines) raw bytes that add up to the input exactly.
func FuzzEventReader(f *testing.F) {
	for _, name := range []string{"chat_stream.sse", "tool_call_stream.sse"} {
		if src, err := os.ReadFile("../internal/testkit/testdata/openai/" + name); err == nil {
			f.Add(src)
		}
	}
	for _, s := range []string{
		"",
		"data: x\n\n",
		"data: a\r\n\r\ndata: b\r\n\r\n",
		"event: e\ndata: 1\ndata: 2\n\n: ping\n\n",
		"\n\n\ndata: x",
		"data: x\n\r",
		"data\n\nevent\n\n:\n\n",
		"data: x\r\r\n\r\r\n",
		"event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"Hi\"}\n\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		want := modelEvents(in)
		for _, r := range []io.Reader{bytes.NewReader(in), iotest.OneByteReader(bytes.NewReader(in))} {
			got, err := readAll(t, r, len(in))
			if !errors.Is(err, io.EOF) {
				t.Fatalf("stream ended with %v, want io.EOF", err)
			}
			if len(got) != len(want) {
				t.Fatalf("got %d events %q, want %d %q", len(got), got, len(want), want)
			}
			var raw strings.Builder
			for i := range got {
				if got[i] != want[i] {
					t.Fatalf("event %d = %q, want %q", i, got[i], want[i])
				}
				raw.WriteString(got[i].raw)
			}
			if wellFormed(in) && raw.String() != string(in) {
				t.Fatalf("raw bytes %q do not add up to the well-formed input %q", raw.String(), in)
			}
		}
	})
}

// wellFormed reports whether every blank line of in ends an event and in
// ends with one.
func wellFormed(in []byte) bool {
	lines := bytes.SplitAfter(in, []byte("\n"))
	if len(lines) > 0 && len(lines[len(lines)-1]) == 0 {
		lines = lines[:len(lines)-1]
	}
	if len(lines) == 0 {
		return true
	}
	open := false
	for _, line := range lines {
		if !bytes.HasSuffix(line, []byte("\n")) {
			return false
		}
		blank := len(bytes.TrimRight(line, "\r\n")) == 0
		if blank && !open {
			return false
		}
		open = !blank
	}
	return !open
}
