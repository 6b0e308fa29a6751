package bedrock

import (
	"encoding/json"
	"errors"
	"io"

	"portcullis/adapters"
)

// StreamDecoder reads a ConverseStream answer, a binary AWS event stream,
// as unified stream events.
type StreamDecoder struct {
	frames *adapters.FrameReader
	queue  []adapters.StreamEvent
	// tools maps a content block index (which counts every block) to its
	// tool call's index (which counts only tool calls).
	tools    map[int]int
	numTools int
	stopped  bool
	done     bool
}

// NewStreamDecoder reads the event stream r.
func NewStreamDecoder(r io.Reader) *StreamDecoder {
	return &StreamDecoder{frames: adapters.NewFrameReader(r), tools: map[int]int{}}
}

// Buffered reports how many bytes have arrived but not been decoded yet.
func (d *StreamDecoder) Buffered() int { return d.frames.Buffered() + len(d.queue) }

// Next returns the next event. The metadata event, with the usage, is the
// last; a stream that ends after messageStop without it is complete too
// (io.EOF), one that ends before messageStop is io.ErrUnexpectedEOF. An
// exception frame ends the stream with an error event.
func (d *StreamDecoder) Next() (adapters.StreamEvent, error) {
	for len(d.queue) == 0 {
		if d.done {
			return adapters.StreamEvent{}, io.EOF
		}
		f, err := d.frames.Next()
		if errors.Is(err, io.EOF) {
			d.done = true
			if d.stopped {
				return adapters.StreamEvent{}, io.EOF
			}
			return adapters.StreamEvent{}, io.ErrUnexpectedEOF
		}
		if err != nil {
			return adapters.StreamEvent{}, err
		}
		d.decode(f)
	}
	ev := d.queue[0]
	d.queue = d.queue[1:]
	return ev, nil
}

type wireStreamEvent struct {
	ContentBlockIndex int `json:"contentBlockIndex"`
	Start             struct {
		ToolUse *struct {
			ToolUseID string `json:"toolUseId"`
			Name      string `json:"name"`
		} `json:"toolUse"`
	} `json:"start"`
	Delta struct {
		Text    string `json:"text"`
		ToolUse *struct {
			Input string `json:"input"`
		} `json:"toolUse"`
		ReasoningContent *struct {
			Text string `json:"text"`
		} `json:"reasoningContent"`
	} `json:"delta"`
	StopReason string     `json:"stopReason"`
	Usage      *wireUsage `json:"usage"`
	Message    string     `json:"message"`
}

func (d *StreamDecoder) decode(f adapters.Frame) {
	var w wireStreamEvent
	if json.Unmarshal(f.Payload, &w) != nil {
		return
	}
	if f.Headers[":message-type"] == "exception" || f.Headers[":message-type"] == "error" {
		typ := f.Headers[":exception-type"]
		if typ == "" {
			typ = f.Headers[":error-code"]
		}
		e := upstreamError(0, typ, w.Message)
		e.Status = 200
		d.push(adapters.StreamEvent{Type: adapters.EventError, Err: e})
		d.done = true
		return
	}
	switch f.Headers[":event-type"] {
	case "messageStart":
		d.push(adapters.StreamEvent{Type: adapters.EventStart, ID: answerID()})
	case "contentBlockStart":
		if tu := w.Start.ToolUse; tu != nil {
			i := d.numTools
			d.numTools++
			d.tools[w.ContentBlockIndex] = i
			d.push(adapters.StreamEvent{Type: adapters.EventToolCall, ToolIndex: i, ToolCallID: tu.ToolUseID, ToolName: tu.Name})
		}
	case "contentBlockDelta":
		switch {
		case w.Delta.ToolUse != nil:
			if i, ok := d.tools[w.ContentBlockIndex]; ok && w.Delta.ToolUse.Input != "" {
				d.push(adapters.StreamEvent{Type: adapters.EventToolArgs, ToolIndex: i, Arguments: w.Delta.ToolUse.Input})
			}
		case w.Delta.ReasoningContent != nil:
			if w.Delta.ReasoningContent.Text != "" {
				d.push(adapters.StreamEvent{Type: adapters.EventReasoning, Text: w.Delta.ReasoningContent.Text})
			}
		case w.Delta.Text != "":
			d.push(adapters.StreamEvent{Type: adapters.EventText, Text: w.Delta.Text})
		}
	case "messageStop":
		if !d.stopped {
			d.stopped = true
			d.push(adapters.StreamEvent{Type: adapters.EventFinish, Finish: FinishReason(w.StopReason)})
		}
	case "metadata":
		if w.Usage != nil {
			u := w.Usage.usage()
			d.push(adapters.StreamEvent{Type: adapters.EventUsage, Usage: &u})
		}
		d.done = d.stopped
	}
}

func (d *StreamDecoder) push(evs ...adapters.StreamEvent) { d.queue = append(d.queue, evs...) }
