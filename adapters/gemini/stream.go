package gemini

import (
	"encoding/json"
	"errors"
	"io"

	"portcullis/adapters"
)

// StreamDecoder reads a streamGenerateContent?alt=sse stream as unified
// stream events. Each event is a whole GenerateContentResponse holding
// only the new parts; function calls come whole, never in fragments.
type StreamDecoder struct {
	events   *adapters.EventReader
	queue    []adapters.StreamEvent
	started  bool
	numTools int
	finished bool
	done     bool
}

// NewStreamDecoder reads the event stream r.
func NewStreamDecoder(r io.Reader) *StreamDecoder {
	return &StreamDecoder{events: adapters.NewEventReader(r)}
}

// Buffered reports how many bytes have arrived but not been decoded yet.
func (d *StreamDecoder) Buffered() int { return d.events.Buffered() + len(d.queue) }

// Next returns the next event. Gemini ends a stream by closing it: after
// a chunk with a finishReason that is io.EOF, before one it is
// io.ErrUnexpectedEOF. An error chunk ends the stream too.
func (d *StreamDecoder) Next() (adapters.StreamEvent, error) {
	for len(d.queue) == 0 {
		if d.done {
			return adapters.StreamEvent{}, io.EOF
		}
		ev, err := d.events.Next()
		if errors.Is(err, io.EOF) {
			d.done = true
			if d.finished {
				return adapters.StreamEvent{}, io.EOF
			}
			return adapters.StreamEvent{}, io.ErrUnexpectedEOF
		}
		if err != nil {
			return adapters.StreamEvent{}, err
		}
		d.decode(ev.Data)
	}
	ev := d.queue[0]
	d.queue = d.queue[1:]
	return ev, nil
}

func (d *StreamDecoder) decode(data []byte) {
	if len(data) == 0 {
		return // a comment or keep-alive
	}
	var w wireResponse
	if json.Unmarshal(data, &w) != nil {
		return
	}
	if w.Error != nil {
		e := upstreamError(w.Error.Code, w.Error)
		e.Status = 200
		d.push(adapters.StreamEvent{Type: adapters.EventError, Err: e})
		d.done = true
		return
	}
	if !d.started {
		d.started = true
		d.push(adapters.StreamEvent{Type: adapters.EventStart, ID: w.ResponseID, Model: w.ModelVersion})
	}
	finish := ""
	if len(w.Candidates) > 0 {
		c := w.Candidates[0]
		p := readParts(c.Content)
		if p.reasoning != "" {
			d.push(adapters.StreamEvent{Type: adapters.EventReasoning, Text: p.reasoning})
		}
		if p.text != "" {
			d.push(adapters.StreamEvent{Type: adapters.EventText, Text: p.text})
		}
		for _, call := range p.calls {
			d.push(adapters.StreamEvent{Type: adapters.EventToolCall, ToolIndex: d.numTools, ToolCallID: call.ID, ToolName: call.Name, Arguments: call.Arguments})
			d.numTools++
		}
		finish = c.FinishReason
	} else if w.PromptFeedback != nil && w.PromptFeedback.BlockReason != "" {
		finish = "SAFETY"
	}
	if finish != "" && !d.finished {
		d.finished = true
		d.push(adapters.StreamEvent{Type: adapters.EventFinish, Finish: FinishReason(finish, d.numTools > 0)})
	}
	if w.UsageMetadata != nil {
		u := w.UsageMetadata.usage()
		d.push(adapters.StreamEvent{Type: adapters.EventUsage, Usage: &u})
	}
}

func (d *StreamDecoder) push(evs ...adapters.StreamEvent) { d.queue = append(d.queue, evs...) }
