package ollama

import (
	"encoding/json"
	"errors"
	"io"

	"portcullis/adapters"
)

// StreamDecoder reads an Ollama NDJSON stream as unified stream events.
// Every line is a whole chat answer holding only what is new; tool calls
// come whole, and the line with done:true has the finish and the counts.
type StreamDecoder struct {
	lines    *adapters.LineReader
	queue    []adapters.StreamEvent
	started  bool
	numTools int
	done     bool
}

// NewStreamDecoder reads the NDJSON stream r.
func NewStreamDecoder(r io.Reader) *StreamDecoder {
	return &StreamDecoder{lines: adapters.NewLineReader(r)}
}

// Buffered reports how many bytes have arrived but not been decoded yet.
func (d *StreamDecoder) Buffered() int { return d.lines.Buffered() + len(d.queue) }

// Next returns the next event. It returns io.EOF after the done:true line
// or an error line, and io.ErrUnexpectedEOF when the stream ends before.
func (d *StreamDecoder) Next() (adapters.StreamEvent, error) {
	for len(d.queue) == 0 {
		if d.done {
			return adapters.StreamEvent{}, io.EOF
		}
		line, err := d.lines.Next()
		if errors.Is(err, io.EOF) {
			d.done = true
			return adapters.StreamEvent{}, io.ErrUnexpectedEOF
		}
		if err != nil {
			return adapters.StreamEvent{}, err
		}
		d.decode(line)
	}
	ev := d.queue[0]
	d.queue = d.queue[1:]
	return ev, nil
}

func (d *StreamDecoder) decode(line []byte) {
	var w wireResponse
	if json.Unmarshal(line, &w) != nil {
		return
	}
	if w.Error != "" {
		e := &adapters.UpstreamError{Status: 200, Kind: adapters.ErrServer, Message: w.Error, Retryable: true}
		if adapters.SaysContextLength(w.Error) {
			e.Kind, e.Retryable = adapters.ErrContextLength, false
		}
		d.push(adapters.StreamEvent{Type: adapters.EventError, Err: e})
		d.done = true
		return
	}
	if !d.started {
		d.started = true
		d.push(adapters.StreamEvent{Type: adapters.EventStart, ID: answerID(), Model: w.Model})
	}
	if w.Message.Thinking != "" {
		d.push(adapters.StreamEvent{Type: adapters.EventReasoning, Text: w.Message.Thinking})
	}
	if w.Message.Content != "" {
		d.push(adapters.StreamEvent{Type: adapters.EventText, Text: w.Message.Content})
	}
	for _, c := range toolCalls(w.Message.ToolCalls) {
		d.push(adapters.StreamEvent{Type: adapters.EventToolCall, ToolIndex: d.numTools, ToolCallID: c.ID, ToolName: c.Name, Arguments: c.Arguments})
		d.numTools++
	}
	if w.Done {
		d.done = true
		u := w.usage()
		d.push(adapters.StreamEvent{Type: adapters.EventFinish, Finish: FinishReason(w.DoneReason, d.numTools > 0)},
			adapters.StreamEvent{Type: adapters.EventUsage, Usage: &u})
	}
}

func (d *StreamDecoder) push(evs ...adapters.StreamEvent) { d.queue = append(d.queue, evs...) }
