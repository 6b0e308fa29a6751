package cohere

import (
	"encoding/json"
	"errors"
	"io"

	"portcullis/adapters"
)

// StreamDecoder reads a v2 chat event stream as unified stream events.
type StreamDecoder struct {
	events *adapters.EventReader
	queue  []adapters.StreamEvent
	// tools maps a content block index (which counts text and the tool
	// plan too, and need not start at 0) to its tool call's index.
	tools    map[int]int
	numTools int
	done     bool
}

// NewStreamDecoder reads the event stream r.
func NewStreamDecoder(r io.Reader) *StreamDecoder {
	return &StreamDecoder{events: adapters.NewEventReader(r), tools: map[int]int{}}
}

// Buffered reports how many bytes have arrived but not been decoded yet.
func (d *StreamDecoder) Buffered() int { return d.events.Buffered() + len(d.queue) }

// Next returns the next event. It returns io.EOF after message-end (a
// [DONE] that may follow is not waited for), and io.ErrUnexpectedEOF when
// the stream ends before it.
func (d *StreamDecoder) Next() (adapters.StreamEvent, error) {
	for len(d.queue) == 0 {
		if d.done {
			return adapters.StreamEvent{}, io.EOF
		}
		ev, err := d.events.Next()
		if errors.Is(err, io.EOF) {
			d.done = true
			return adapters.StreamEvent{}, io.ErrUnexpectedEOF
		}
		if err != nil {
			return adapters.StreamEvent{}, err
		}
		d.decode(ev)
	}
	ev := d.queue[0]
	d.queue = d.queue[1:]
	return ev, nil
}

// wireEvent is any v2 stream event; which fields are set depends on type.
type wireEvent struct {
	ID    string `json:"id"`
	Type  string `json:"type"`
	Index int    `json:"index"`
	Delta struct {
		Message struct {
			// Content is one part in content-delta, an array in message-start.
			Content   json.RawMessage `json:"content"`
			ToolPlan  string          `json:"tool_plan"`
			ToolCalls json.RawMessage `json:"tool_calls"`
		} `json:"message"`
		FinishReason string     `json:"finish_reason"`
		Usage        *wireUsage `json:"usage"`
		Error        string     `json:"error"`
	} `json:"delta"`
}

func (d *StreamDecoder) decode(ev adapters.Event) {
	if len(ev.Data) == 0 || string(ev.Data) == "[DONE]" {
		return
	}
	var w wireEvent
	if json.Unmarshal(ev.Data, &w) != nil {
		return
	}
	name := string(ev.Name)
	if name == "" {
		name = w.Type
	}
	switch name {
	case "message-start":
		d.push(adapters.StreamEvent{Type: adapters.EventStart, ID: w.ID})
	case "content-delta":
		var c wireContentPart
		_ = json.Unmarshal(w.Delta.Message.Content, &c)
		if c.Text != "" {
			d.push(adapters.StreamEvent{Type: adapters.EventText, Text: c.Text})
		} else if c.Thinking != "" {
			d.push(adapters.StreamEvent{Type: adapters.EventReasoning, Text: c.Thinking})
		}
	case "tool-plan-delta":
		if w.Delta.Message.ToolPlan != "" {
			d.push(adapters.StreamEvent{Type: adapters.EventReasoning, Text: w.Delta.Message.ToolPlan})
		}
	case "tool-call-start":
		// tool_calls is one object here, not an array.
		var c wireToolCall
		_ = json.Unmarshal(w.Delta.Message.ToolCalls, &c)
		if c.ID == "" {
			c.ID = adapters.NewCallID()
		}
		i := d.numTools
		d.numTools++
		d.tools[w.Index] = i
		d.push(adapters.StreamEvent{Type: adapters.EventToolCall, ToolIndex: i, ToolCallID: c.ID, ToolName: c.Function.Name, Arguments: c.Function.Arguments})
	case "tool-call-delta":
		var c wireToolCall
		_ = json.Unmarshal(w.Delta.Message.ToolCalls, &c)
		if i, ok := d.tools[w.Index]; ok && c.Function.Arguments != "" {
			d.push(adapters.StreamEvent{Type: adapters.EventToolArgs, ToolIndex: i, Arguments: c.Function.Arguments})
		}
	case "message-end":
		d.done = true
		if w.Delta.FinishReason == "ERROR" && w.Delta.Error != "" {
			d.push(adapters.StreamEvent{Type: adapters.EventError, Err: &adapters.UpstreamError{
				Status: 200, Kind: adapters.ErrServer, Type: "ERROR", Message: w.Delta.Error, Retryable: true}})
			return
		}
		finish := FinishReason(w.Delta.FinishReason)
		if d.numTools > 0 && finish == adapters.FinishStop {
			finish = adapters.FinishToolCalls
		}
		d.push(adapters.StreamEvent{Type: adapters.EventFinish, Finish: finish})
		if w.Delta.Usage != nil {
			u := w.Delta.Usage.usage()
			d.push(adapters.StreamEvent{Type: adapters.EventUsage, Usage: &u})
		}
	}
}

func (d *StreamDecoder) push(evs ...adapters.StreamEvent) { d.queue = append(d.queue, evs...) }
