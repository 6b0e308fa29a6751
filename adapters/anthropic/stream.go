package anthropic

import (
	"encoding/json"
	"errors"
	"io"

	"portcullis/adapters"
)

// StreamDecoder reads a Messages event stream as unified stream events.
type StreamDecoder struct {
	events *adapters.EventReader
	queue  []adapters.StreamEvent
	// tools maps a content block index (which counts every block) to its
	// tool call's index (which counts only tool calls).
	tools    map[int]int
	numTools int
	usage    wireUsage
	done     bool
}

// NewStreamDecoder reads the event stream r.
func NewStreamDecoder(r io.Reader) *StreamDecoder {
	return &StreamDecoder{events: adapters.NewEventReader(r), tools: map[int]int{}}
}

// Buffered reports how many bytes have arrived but not been decoded yet.
func (d *StreamDecoder) Buffered() int { return d.events.Buffered() + len(d.queue) }

// Next returns the next event. It returns io.EOF after message_stop or an
// error event, and io.ErrUnexpectedEOF when the stream ends before either.
func (d *StreamDecoder) Next() (adapters.StreamEvent, error) {
	for len(d.queue) == 0 {
		if d.done {
			return adapters.StreamEvent{}, io.EOF
		}
		ev, err := d.events.Next()
		if errors.Is(err, io.EOF) {
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

type wireEvent struct {
	Type    string `json:"type"`
	Message struct {
		ID    string    `json:"id"`
		Model string    `json:"model"`
		Usage wireUsage `json:"usage"`
	} `json:"message"`
	Index        int       `json:"index"`
	ContentBlock wireBlock `json:"content_block"`
	Delta        struct {
		Type        string `json:"type"`
		Text        string `json:"text"`
		PartialJSON string `json:"partial_json"`
		Thinking    string `json:"thinking"`
		StopReason  string `json:"stop_reason"`
	} `json:"delta"`
	Usage *wireUsage `json:"usage"`
	Error struct {
		Type    string `json:"type"`
		Message string `json:"message"`
	} `json:"error"`
}

func (d *StreamDecoder) decode(ev adapters.Event) {
	if len(ev.Data) == 0 {
		return // a comment or keep-alive
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
	case "message_start":
		d.usage = w.Message.Usage
		u := d.usage.usage()
		d.push(adapters.StreamEvent{Type: adapters.EventStart, ID: w.Message.ID, Model: w.Message.Model},
			adapters.StreamEvent{Type: adapters.EventUsage, Usage: &u})
	case "content_block_start":
		switch w.ContentBlock.Type {
		case "tool_use":
			i := d.numTools
			d.numTools++
			d.tools[w.Index] = i
			d.push(adapters.StreamEvent{Type: adapters.EventToolCall, ToolIndex: i, ToolCallID: w.ContentBlock.ID, ToolName: w.ContentBlock.Name})
		case "text":
			if w.ContentBlock.Text != "" {
				d.push(adapters.StreamEvent{Type: adapters.EventText, Text: w.ContentBlock.Text})
			}
		}
	case "content_block_delta":
		switch w.Delta.Type {
		case "text_delta":
			d.push(adapters.StreamEvent{Type: adapters.EventText, Text: w.Delta.Text})
		case "input_json_delta":
			if i, ok := d.tools[w.Index]; ok && w.Delta.PartialJSON != "" {
				d.push(adapters.StreamEvent{Type: adapters.EventToolArgs, ToolIndex: i, Arguments: w.Delta.PartialJSON})
			}
		case "thinking_delta":
			d.push(adapters.StreamEvent{Type: adapters.EventReasoning, Text: w.Delta.Thinking})
		}
	case "message_delta":
		if w.Usage != nil {
			d.usage.OutputTokens = w.Usage.OutputTokens
			if w.Usage.InputTokens != nil {
				d.usage.InputTokens = w.Usage.InputTokens
			}
			if w.Usage.CacheCreationInputTokens != nil {
				d.usage.CacheCreationInputTokens = w.Usage.CacheCreationInputTokens
			}
			if w.Usage.CacheReadInputTokens != nil {
				d.usage.CacheReadInputTokens = w.Usage.CacheReadInputTokens
			}
		}
		u := d.usage.usage()
		if w.Delta.StopReason != "" {
			d.push(adapters.StreamEvent{Type: adapters.EventFinish, Finish: FinishReason(w.Delta.StopReason)})
		}
		d.push(adapters.StreamEvent{Type: adapters.EventUsage, Usage: &u})
	case "message_stop":
		d.done = true
	case "error":
		e := &adapters.UpstreamError{Status: 200, Type: w.Error.Type, Message: w.Error.Message}
		e.Kind = errorKind(0, e.Type, e.Message)
		e.Retryable = e.Kind == adapters.ErrOverloaded || e.Kind == adapters.ErrRateLimit || e.Kind == adapters.ErrServer
		d.push(adapters.StreamEvent{Type: adapters.EventError, Err: e})
		d.done = true
	}
}

func (d *StreamDecoder) push(evs ...adapters.StreamEvent) { d.queue = append(d.queue, evs...) }

// StreamEncoder writes unified stream events as a Messages event stream,
// for /v1/messages clients served by a provider of another format.
type StreamEncoder struct {
	model   string
	id      string
	started bool
	ended   bool
	// open is the index of the content block being written; -1 for none.
	open     int
	openTool int // the tool index of the open block; -1 for text
	next     int
	blocks   map[int]int // tool index → block index
	stop     string
	usage    adapters.Usage
	buf      []byte
}

// NewStreamEncoder writes a stream that names model as the model.
func NewStreamEncoder(model string) *StreamEncoder {
	return &StreamEncoder{model: model, open: -1, openTool: -1, blocks: map[int]int{}, stop: "end_turn"}
}

// Encode returns the SSE bytes for ev; they are valid until the next call.
func (e *StreamEncoder) Encode(ev adapters.StreamEvent) []byte {
	e.buf = e.buf[:0]
	if e.ended {
		return nil
	}
	if ev.Type == adapters.EventStart {
		e.id = ev.ID
	}
	e.start()
	switch ev.Type {
	case adapters.EventText:
		if ev.Text == "" {
			break
		}
		if e.open < 0 || e.openTool >= 0 {
			e.closeBlock()
			e.openBlock(-1, textBlock{Type: "text", Text: ""})
		}
		e.delta(e.open, struct {
			Type string `json:"type"`
			Text string `json:"text"`
		}{"text_delta", ev.Text})
	case adapters.EventToolCall:
		e.closeBlock()
		e.openBlock(ev.ToolIndex, toolUseBlock{Type: "tool_use", ID: toolUseID(ev.ToolCallID), Name: ev.ToolName, Input: json.RawMessage("{}")})
		if ev.Arguments != "" {
			e.argsDelta(e.open, ev.Arguments)
		}
	case adapters.EventToolArgs:
		if block, ok := e.blocks[ev.ToolIndex]; ok && ev.Arguments != "" {
			e.argsDelta(block, ev.Arguments)
		}
	case adapters.EventFinish:
		e.closeBlock()
		e.stop = StopReason(ev.Finish)
	case adapters.EventUsage:
		e.usage = *ev.Usage
	case adapters.EventError:
		e.fail(ev.Err.Type, ev.Err.Message)
	}
	return e.buf
}

// End returns the closing events of a stream that completed.
func (e *StreamEncoder) End() []byte {
	e.buf = e.buf[:0]
	if e.ended {
		return nil
	}
	e.start()
	e.closeBlock()
	e.ended = true
	u := wireUsageOf(e.usage)
	e.event("message_delta", struct {
		Type  string `json:"type"`
		Delta struct {
			StopReason   string  `json:"stop_reason"`
			StopSequence *string `json:"stop_sequence"`
		} `json:"delta"`
		Usage wireUsage `json:"usage"`
	}{Type: "message_delta", Delta: struct {
		StopReason   string  `json:"stop_reason"`
		StopSequence *string `json:"stop_sequence"`
	}{StopReason: e.stop}, Usage: u})
	e.event("message_stop", struct {
		Type string `json:"type"`
	}{"message_stop"})
	return e.buf
}

// Fail appends an error event, which ends the stream, and returns the
// pending bytes. errType is an Anthropic error type; an OpenAI type or an
// empty one becomes api_error, overloaded stays overloaded.
func (e *StreamEncoder) Fail(errType, message string) []byte {
	e.buf = e.buf[:0]
	e.fail(errType, message)
	return e.buf
}

func (e *StreamEncoder) fail(errType, message string) {
	if e.ended {
		return
	}
	switch errType {
	case "overloaded_error", "rate_limit_error", "api_error", "invalid_request_error", "timeout_error":
	default:
		errType = "api_error"
	}
	e.ended = true
	e.event("error", json.RawMessage(ErrorBody(errType, message, "")))
}

func (e *StreamEncoder) start() {
	if e.started {
		return
	}
	e.started = true
	zero := 0
	e.event("message_start", struct {
		Type    string `json:"type"`
		Message struct {
			ID           string    `json:"id"`
			Type         string    `json:"type"`
			Role         string    `json:"role"`
			Model        string    `json:"model"`
			Content      []any     `json:"content"`
			StopReason   *string   `json:"stop_reason"`
			StopSequence *string   `json:"stop_sequence"`
			Usage        wireUsage `json:"usage"`
		} `json:"message"`
	}{Type: "message_start", Message: struct {
		ID           string    `json:"id"`
		Type         string    `json:"type"`
		Role         string    `json:"role"`
		Model        string    `json:"model"`
		Content      []any     `json:"content"`
		StopReason   *string   `json:"stop_reason"`
		StopSequence *string   `json:"stop_sequence"`
		Usage        wireUsage `json:"usage"`
	}{ID: messageID(e.id), Type: "message", Role: "assistant", Model: e.model, Content: []any{},
		Usage: wireUsage{InputTokens: &zero, OutputTokens: 0}}})
}

func (e *StreamEncoder) openBlock(tool int, block any) {
	e.open, e.openTool = e.next, tool
	if tool >= 0 {
		e.blocks[tool] = e.next
	}
	e.next++
	e.event("content_block_start", struct {
		Type         string `json:"type"`
		Index        int    `json:"index"`
		ContentBlock any    `json:"content_block"`
	}{"content_block_start", e.open, block})
}

func (e *StreamEncoder) closeBlock() {
	if e.open < 0 {
		return
	}
	e.event("content_block_stop", struct {
		Type  string `json:"type"`
		Index int    `json:"index"`
	}{"content_block_stop", e.open})
	e.open, e.openTool = -1, -1
}

func (e *StreamEncoder) argsDelta(block int, fragment string) {
	e.delta(block, struct {
		Type        string `json:"type"`
		PartialJSON string `json:"partial_json"`
	}{"input_json_delta", fragment})
}

func (e *StreamEncoder) delta(block int, delta any) {
	e.event("content_block_delta", struct {
		Type  string `json:"type"`
		Index int    `json:"index"`
		Delta any    `json:"delta"`
	}{"content_block_delta", block, delta})
}

func (e *StreamEncoder) event(name string, v any) {
	data, _ := json.Marshal(v)
	e.buf = append(e.buf, "event: "...)
	e.buf = append(e.buf, name...)
	e.buf = append(e.buf, "\ndata: "...)
	e.buf = append(e.buf, data...)
	e.buf = append(e.buf, "\n\n"...)
}

// NewStreamObserver returns a decoder fed one event at a time through
// Observe, for a relay that forwards the stream's own bytes and only
// reads it on the way.
func NewStreamObserver() *StreamDecoder { return &StreamDecoder{tools: map[int]int{}} }

// Observe decodes one event and returns the unified events it holds,
// valid until the next call.
func (d *StreamDecoder) Observe(ev adapters.Event) []adapters.StreamEvent {
	d.queue = d.queue[:0]
	d.decode(ev)
	return d.queue
}

// Done reports whether the stream has ended, with message_stop or an error.
func (d *StreamDecoder) Done() bool { return d.done }
