package adapters

import (
	"bufio"
	"bytes"
	"errors"
	"io"
)

// Event is one Server-Sent Event as it came over the wire.
type Event struct {
	// Raw is the event's bytes, including its closing blank line, ready to
	// be forwarded unchanged. It is only valid until the next call to Next.
	Raw []byte
	// Name is the value of the "event:" field, if any.
	Name []byte
	// Data is the event's data: the "data:" lines joined by newlines. It is
	// only valid until the next call to Next.
	Data []byte
}

// MaxEventSize bounds one event, so a broken upstream cannot make the
// gateway buffer without limit.
const MaxEventSize = 8 << 20

// ErrEventTooLarge is returned for an event larger than MaxEventSize.
var ErrEventTooLarge = errors.New("sse: event larger than 8 MiB")

// EventReader reads a text/event-stream one event at a time.
type EventReader struct {
	r    *bufio.Reader
	raw  []byte
	data []byte
}

// NewEventReader reads events from r.
func NewEventReader(r io.Reader) *EventReader {
	return &EventReader{r: bufio.NewReaderSize(r, 32<<10)}
}

// Next returns the next event. Comment-only events (keep-alives) are
// returned too, with empty Data, so a relay can forward them. At the end of
// the stream it returns io.EOF; a final event without its blank line is
// still returned first. Any other error means the stream broke.
func (er *EventReader) Next() (Event, error) {
	er.raw = er.raw[:0]
	er.data = er.data[:0]
	var name []byte
	hasData := false
	for {
		line, err := er.readLine()
		if len(line) > 0 {
			er.raw = append(er.raw, line...)
			if len(er.raw) > MaxEventSize {
				return Event{}, ErrEventTooLarge
			}
		}
		content := bytes.TrimRight(line, "\r\n")
		if len(content) == 0 && len(line) > 0 {
			if len(er.raw) == len(line) {
				// A blank line before any field: nothing to dispatch.
				er.raw = er.raw[:0]
				continue
			}
			return Event{Raw: er.raw, Name: name, Data: er.data}, nil
		}
		if len(content) > 0 {
			field, value, _ := bytes.Cut(content, []byte(":"))
			value = bytes.TrimPrefix(value, []byte(" "))
			switch string(field) {
			case "data":
				if hasData {
					er.data = append(er.data, '\n')
				}
				er.data = append(er.data, value...)
				hasData = true
			case "event":
				name = append(name[:0], value...)
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) && len(er.raw) > 0 {
				// The upstream closed without the final blank line
				// (Perplexity does): dispatch what arrived, then EOF.
				er.raw = append(er.raw, "\n\n"[:2-trailingNewlines(er.raw)]...)
				return Event{Raw: er.raw, Name: name, Data: er.data}, nil
			}
			return Event{}, err
		}
	}
}

// Buffered reports how many bytes have arrived but not been read yet. A
// relay flushes when it is zero: then the next event is not already here,
// and holding what was written would delay it.
func (er *EventReader) Buffered() int { return er.r.Buffered() }

// readLine returns one line with its line ending, however long.
func (er *EventReader) readLine() ([]byte, error) {
	line, err := er.r.ReadSlice('\n')
	if !errors.Is(err, bufio.ErrBufferFull) {
		return line, err
	}
	long := append([]byte(nil), line...)
	for errors.Is(err, bufio.ErrBufferFull) {
		if len(long) > MaxEventSize {
			return nil, ErrEventTooLarge
		}
		line, err = er.r.ReadSlice('\n')
		long = append(long, line...)
	}
	return long, err
}

func trailingNewlines(b []byte) int {
	n := 0
	for i := len(b) - 1; i >= 0 && n < 2 && b[i] == '\n'; i-- {
		n++
	}
	return n
}
