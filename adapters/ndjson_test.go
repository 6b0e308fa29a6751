package adapters

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// readLines reads every line from r, with the error that ended the stream.
func readLines(t *testing.T, r io.Reader, limit int) ([]string, error) {
	t.Helper()
	lr := NewLineReader(r)
	var lines []string
	for range limit + 2 {
		line, err := lr.Next()
		if err != nil {
			return lines, err
		}
		lines = append(lines, string(line))
	}
	t.Fatalf("no end after %d lines", limit+2)
	return nil, nil
}

func TestLineReader(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want []string
	}{
		{"empty", "", nil},
		{"lines", "{\"a\":1}\n{\"b\":2}\n", []string{`{"a":1}`, `{"b":2}`}},
		{"CRLF", "{\"a\":1}\r\n{\"b\":2}\r\n", []string{`{"a":1}`, `{"b":2}`}},
		{"blank lines skipped", "\n\n{\"a\":1}\n \n\r\n{\"b\":2}\n\n", []string{`{"a":1}`, `{"b":2}`}},
		{"last line without newline", "{\"a\":1}\n{\"done\":true}", []string{`{"a":1}`, `{"done":true}`}},
		{"long line", strings.Repeat("x", 100<<10) + "\n", []string{strings.Repeat("x", 100<<10)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, r := range []io.Reader{strings.NewReader(tc.in), iotest.OneByteReader(strings.NewReader(tc.in))} {
				got, err := readLines(t, r, len(tc.in))
				if !errors.Is(err, io.EOF) {
					t.Fatalf("ended with %v, want io.EOF", err)
				}
				if strings.Join(got, "|") != strings.Join(tc.want, "|") {
					t.Errorf("lines %q, want %q", got, tc.want)
				}
			}
		})
	}
}

func TestLineReaderBrokenStream(t *testing.T) {
	broken := errors.New("connection reset")
	r := io.MultiReader(strings.NewReader("{\"a\":1}\n{\"b\""), iotest.ErrReader(broken))
	got, err := readLines(t, r, 4)
	if !errors.Is(err, broken) || len(got) != 1 {
		t.Errorf("lines %q, error %v; want one line, then the read error", got, err)
	}
}

func TestLineReaderTooLarge(t *testing.T) {
	r := io.MultiReader(bytes.NewReader(bytes.Repeat([]byte("x"), MaxEventSize+1)), strings.NewReader("\n"))
	if _, err := NewLineReader(r).Next(); !errors.Is(err, ErrEventTooLarge) {
		t.Errorf("error %v, want ErrEventTooLarge", err)
	}
}

// FuzzLineReader checks LineReader against a plain split on "\n": the
// same non-blank lines, trimmed, however the bytes arrive, and then io.EOF.
func FuzzLineReader(f *testing.F) {
	for _, s := range []string{
		"",
		"{\"a\":1}\n",
		"{\"a\":1}\r\n\r\n{\"b\":2}",
		"\n\n\n",
		"{\"model\":\"llama3.2\",\"message\":{\"role\":\"assistant\",\"content\":\"Red\"},\"done\":false}\n{\"done\":true}\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var want []string
		for _, l := range bytes.Split(in, []byte("\n")) {
			if l = bytes.TrimSpace(l); len(l) > 0 {
				want = append(want, string(l))
			}
		}
		for _, r := range []io.Reader{bytes.NewReader(in), iotest.OneByteReader(bytes.NewReader(in))} {
			got, err := readLines(t, r, len(in))
			if !errors.Is(err, io.EOF) {
				t.Fatalf("ended with %v, want io.EOF", err)
			}
			if len(got) != len(want) {
				t.Fatalf("got %q, want %q", got, want)
			}
			for i := range got {
				if got[i] != want[i] {
					t.Fatalf("line %d = %q, want %q", i, got[i], want[i])
				}
			}
		}
	})
}
