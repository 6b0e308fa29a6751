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

// event is an Event with its byte slices copied, for comparison.
type event struct {
	raw, name, data string
}

// readAll reads every event of the stream, copying each before the next
// call to Next reuses its buffers. It fails the test if the reader does not
// stop within a bound that a reader making progress always meets.
func readAll(t *testing.T, r io.Reader, limit int) ([]event, error) {
	t.Helper()
	er := NewEventReader(r)
	var events []event
	for range limit + 2 {
		ev, err := er.Next()
		if err != nil {
			return events, err
		}
		events = append(events, event{string(ev.Raw), string(ev.Name), string(ev.Data)})
	}
	t.Fatalf("EventReader returned more than %d events for %d bytes", limit+2, limit)
	return nil, nil
}

func TestEventReader(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []event
	}{
		{
			name: "one data event",
			in:   "data: hello\n\n",
			want: []event{{"data: hello\n\n", "", "hello"}},
		},
		{
			name: "CRLF line endings",
			in:   "data: a\r\n\r\ndata: b\r\n\r\n",
			want: []event{{"data: a\r\n\r\n", "", "a"}, {"data: b\r\n\r\n", "", "b"}},
		},
		{
			name: "multi-line data joined by newlines",
			in:   "data: one\ndata: two\ndata:\ndata: four\n\n",
			want: []event{{"data: one\ndata: two\ndata:\ndata: four\n\n", "", "one\ntwo\n\nfour"}},
		},
		{
			name: "only one leading space is dropped",
			in:   "data:no-space\n\ndata:  two-spaces\n\n",
			want: []event{{"data:no-space\n\n", "", "no-space"}, {"data:  two-spaces\n\n", "", " two-spaces"}},
		},
		{
			name: "colons in the value",
			in:   "data: {\"a\":\"b:c\"}\n\n",
			want: []event{{"data: {\"a\":\"b:c\"}\n\n", "", `{"a":"b:c"}`}},
		},
		{
			name: "named event, last name wins",
			in:   "event: first\nevent: response.completed\ndata: {}\n\n",
			want: []event{{"event: first\nevent: response.completed\ndata: {}\n\n", "response.completed", "{}"}},
		},
		{
			name: "keep-alive comment is its own event",
			in:   ": ping\n\ndata: x\n\n",
			want: []event{{": ping\n\n", "", ""}, {"data: x\n\n", "", "x"}},
		},
		{
			name: "comment inside an event is kept raw only",
			in:   "data: a\n: note\ndata: b\n\n",
			want: []event{{"data: a\n: note\ndata: b\n\n", "", "a\nb"}},
		},
		{
			name: "id, retry and unknown fields are ignored but kept raw",
			in:   "id: 7\nretry: 100\nfoo: bar\ndata: x\n\n",
			want: []event{{"id: 7\nretry: 100\nfoo: bar\ndata: x\n\n", "", "x"}},
		},
		{
			name: "field without a colon",
			in:   "data\n\n",
			want: []event{{"data\n\n", "", ""}},
		},
		{
			name: "blank lines before an event are dropped",
			in:   "\n\r\n\ndata: x\n\n\n\ndata: y\n\n",
			want: []event{{"data: x\n\n", "", "x"}, {"data: y\n\n", "", "y"}},
		},
		{
			name: "last event without its blank line",
			in:   "data: a\n\ndata: [DONE]\n",
			want: []event{{"data: a\n\n", "", "a"}, {"data: [DONE]\n\n", "", "[DONE]"}},
		},
		{
			name: "last event without any line ending",
			in:   "data: a\n\ndata: [DONE]",
			want: []event{{"data: a\n\n", "", "a"}, {"data: [DONE]\n\n", "", "[DONE]"}},
		},
		{
			name: "empty stream",
			in:   "",
		},
		{
			name: "only blank lines",
			in:   "\n\n\r\n",
		},
	}
	readers := map[string]func(string) io.Reader{
		"whole":    func(s string) io.Reader { return strings.NewReader(s) },
		"one byte": func(s string) io.Reader { return iotest.OneByteReader(strings.NewReader(s)) },
		"data+EOF": func(s string) io.Reader { return iotest.DataErrReader(strings.NewReader(s)) },
	}
	for _, tt := range tests {
		for rname, mk := range readers {
			t.Run(tt.name+"/"+rname, func(t *testing.T) {
				got, err := readAll(t, mk(tt.in), len(tt.in))
				if !errors.Is(err, io.EOF) {
					t.Fatalf("stream ended with %v, want io.EOF", err)
				}
				if len(got) != len(tt.want) {
					t.Fatalf("got %d events %q, want %d %q", len(got), got, len(tt.want), tt.want)
				}
				for i := range got {
					if got[i] != tt.want[i] {
						t.Errorf("event %d = %q, want %q", i, got[i], tt.want[i])
					}
				}
			})
		}
	}
}

// The OpenAI fixture streams back byte for byte, event by event.
func TestEventReaderOpenAIFixtures(t *testing.T) {
	for _, name := range []string{"chat_stream.sse", "tool_call_stream.sse"} {
		t.Run(name, func(t *testing.T) {
			src, err := os.ReadFile("../internal/testkit/testdata/openai/" + name)
			if err != nil {
				t.Fatal(err)
			}
			events, err := readAll(t, bytes.NewReader(src), len(src))
			if !errors.Is(err, io.EOF) {
				t.Fatalf("stream ended with %v", err)
			}
			var raw strings.Builder
			for _, ev := range events {
				raw.WriteString(ev.raw)
				if ev.name != "" {
					t.Errorf("chat completions events have no name, got %q", ev.name)
				}
				if !strings.HasPrefix(ev.raw, "data: "+ev.data+"\n\n") {
					t.Errorf("raw %q does not frame data %q", ev.raw, ev.data)
				}
			}
			if raw.String() != string(src) {
				t.Error("the events' raw bytes do not add up to the stream")
			}
			if n := strings.Count(string(src), "\n\n"); len(events) != n {
				t.Errorf("got %d events, want %d", len(events), n)
			}
			if last := events[len(events)-1].data; last != "[DONE]" {
				t.Errorf("last data = %q, want [DONE]", last)
			}
		})
	}
}

func TestEventReaderBrokenStream(t *testing.T) {
	errReset := errors.New("connection reset")
	r := io.MultiReader(strings.NewReader("data: a\n\ndata: b"), iotest.ErrReader(errReset))
	events, err := readAll(t, r, 100)
	if !errors.Is(err, errReset) {
		t.Fatalf("error = %v, want the reader's error", err)
	}
	if len(events) != 1 || events[0].data != "a" {
		t.Errorf("events before the break = %q, want only the complete one", events)
	}
}

func TestEventReaderSizes(t *testing.T) {
	// A line longer than the reader's buffer is read whole.
	long := strings.Repeat("x", 200<<10)
	events, err := readAll(t, strings.NewReader("data: "+long+"\n\ndata: next\n\n"), 4)
	if !errors.Is(err, io.EOF) || len(events) != 2 || events[0].data != long || events[1].data != "next" {
		t.Fatalf("long line: %d events, %v", len(events), err)
	}

	tests := []struct {
		name string
		in   string
	}{
		{"one huge line", "data: " + strings.Repeat("x", MaxEventSize+1) + "\n\n"},
		{"one huge line without end", "data: " + strings.Repeat("x", MaxEventSize+1)},
		{"many lines", strings.Repeat("data: "+strings.Repeat("y", 1<<10)+"\n", MaxEventSize>>10) + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			er := NewEventReader(strings.NewReader("data: before\n\n" + tt.in))
			if ev, err := er.Next(); err != nil || string(ev.Data) != "before" {
				t.Fatalf("first event: %q, %v", ev.Data, err)
			}
			if _, err := er.Next(); !errors.Is(err, ErrEventTooLarge) {
				t.Fatalf("error = %v, want ErrEventTooLarge", err)
			}
		})
	}

	// Just under the limit is fine.
	fits := "data: " + strings.Repeat("z", MaxEventSize-8) + "\n\n"
	events, err = readAll(t, strings.NewReader(fits), 2)
	if !errors.Is(err, io.EOF) || len(events) != 1 || len(events[0].raw) != len(fits) {
		t.Fatalf("event just under the limit: %d events, %v", len(events), err)
	}
}
