package openai

import (
	"encoding/json"
	"errors"
	"io"
	"time"

	"portcullis/adapters"
)

// StreamDecoder reads a chat completions event stream as unified stream
// events.
type StreamDecoder struct {
	events   *adapters.EventReader
	queue    []adapters.StreamEvent
	started  bool
	finished bool
	done     bool
	tools    map[int]bool // tool call indexes already begun
	extra    adapters.Extra
}

// NewStreamDecoder reads the event stream r.
func NewStreamDecoder(r io.Reader) *StreamDecoder {
	return &StreamDecoder{events: adapters.NewEventReader(r), tools: map[int]bool{}}
}

// NewStreamObserver returns a decoder fed one chunk at a time through
// Observe, for a relay that forwards the stream's own bytes and only reads
// it on the way.
func NewStreamObserver() *StreamDecoder { return &StreamDecoder{tools: map[int]bool{}} }

// Observe decodes one chunk's data and returns the unified events it
// holds, valid until the next call.
func (d *StreamDecoder) Observe(data []byte) []adapters.StreamEvent {
	d.queue = d.queue[:0]
	d.decode(data)
	return d.queue
}

// Buffered reports how many bytes have arrived but not been decoded yet.
func (d *StreamDecoder) Buffered() int { return d.events.Buffered() + len(d.queue) }

// Next returns the next event. It returns io.EOF after [DONE] or an error
// chunk (or at the end of a stream that had its finish chunk but no
// [DONE], as Perplexity's streams end), and io.ErrUnexpectedEOF for a
// stream cut short.
func (d *StreamDecoder) Next() (adapters.StreamEvent, error) {
	for len(d.queue) == 0 {
		if d.done {
			return adapters.StreamEvent{}, io.EOF
		}
		ev, err := d.events.Next()
		if errors.Is(err, io.EOF) {
			if d.finished {
				d.done = true
				continue
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

type wireChunk struct {
	ID      string `json:"id"`
	Model   string `json:"model"`
	Choices []struct {
		Delta struct {
			Content          string `json:"content"`
			ReasoningContent string `json:"reasoning_content"`
			// Reasoning is Groq's and Ollama's name for it.
			Reasoning string         `json:"reasoning"`
			ToolCalls []wireToolCall `json:"tool_calls"`
		} `json:"delta"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
	Usage *wireUsage `json:"usage"`
	// XGroq is where Groq puts a stream's usage, on its last chunk.
	XGroq *struct {
		Usage *wireUsage `json:"usage"`
		// Error is how Groq may report an error mid-stream.
		Error *ErrorBody `json:"error"`
	} `json:"x_groq"`
	Error *ErrorBody `json:"error"`
	wireExtra
}

// usage is the chunk's usage, wherever the dialect put it.
func (c *wireChunk) usage() *wireUsage {
	if c.Usage == nil && c.XGroq != nil {
		return c.XGroq.Usage
	}
	return c.Usage
}

func (d *StreamDecoder) decode(data []byte) {
	if len(data) == 0 {
		return
	}
	if string(data) == "[DONE]" {
		d.done = true
		return
	}
	var c wireChunk
	if json.Unmarshal(data, &c) != nil {
		return
	}
	if c.Error == nil && c.XGroq != nil {
		c.Error = c.XGroq.Error
	}
	if c.Error != nil {
		e := &adapters.UpstreamError{Status: 200, Type: c.Error.Type, Code: c.Error.CodeString(), Message: c.Error.Message}
		e.Kind = errorKind(0, e.Type, e.Code, e.Message)
		e.Retryable = e.Kind == adapters.ErrServer || e.Kind == adapters.ErrOverloaded
		d.queue = append(d.queue, adapters.StreamEvent{Type: adapters.EventError, Err: e})
		d.done = true
		return
	}
	usage := c.usage()
	if len(c.Choices) == 0 && usage == nil {
		// Azure opens its streams with a chunk of prompt filter results
		// only (no choices, no id); research-phase chunks of Perplexity
		// carry nothing either.
		return
	}
	if x := c.extra(); x != nil {
		// Perplexity repeats them on every chunk; the finish gets the last.
		d.extra = x
	}
	if !d.started {
		d.started = true
		d.queue = append(d.queue, adapters.StreamEvent{Type: adapters.EventStart, ID: c.ID, Model: c.Model})
	}
	for _, ch := range c.Choices {
		if ch.Delta.ReasoningContent == "" {
			ch.Delta.ReasoningContent = ch.Delta.Reasoning
		}
		if ch.Delta.ReasoningContent != "" {
			d.queue = append(d.queue, adapters.StreamEvent{Type: adapters.EventReasoning, Text: ch.Delta.ReasoningContent})
		}
		if ch.Delta.Content != "" {
			d.queue = append(d.queue, adapters.StreamEvent{Type: adapters.EventText, Text: ch.Delta.Content})
		}
		for i, tc := range ch.Delta.ToolCalls {
			index := i
			if tc.Index != nil {
				index = *tc.Index
			}
			if !d.tools[index] {
				d.tools[index] = true
				d.queue = append(d.queue, adapters.StreamEvent{Type: adapters.EventToolCall, ToolIndex: index,
					ToolCallID: tc.ID, ToolName: tc.Function.Name, Arguments: tc.Function.Arguments})
				continue
			}
			if tc.Function.Arguments != "" {
				d.queue = append(d.queue, adapters.StreamEvent{Type: adapters.EventToolArgs, ToolIndex: index, Arguments: tc.Function.Arguments})
			}
		}
		if ch.FinishReason != nil && *ch.FinishReason != "" {
			d.finished = true
			d.queue = append(d.queue, adapters.StreamEvent{Type: adapters.EventFinish, Finish: adapters.FinishReason(finishReason(*ch.FinishReason)), Extra: d.extra})
		}
	}
	if usage != nil {
		u := usage.usage()
		d.queue = append(d.queue, adapters.StreamEvent{Type: adapters.EventUsage, Usage: &u})
	}
}

// StreamEncoder writes unified stream events as a chat completions event
// stream: a role chunk first, content and tool call chunks, the finish
// chunk, the usage chunk when the client asked for it, then [DONE].
type StreamEncoder struct {
	id           string
	model        string
	created      int64
	includeUsage bool
	started      bool
	ended        bool
	usage        *adapters.Usage
	buf          []byte
}

// NewStreamEncoder writes a stream that names model as the model, with a
// usage chunk at the end when includeUsage is set.
func NewStreamEncoder(model string, includeUsage bool) *StreamEncoder {
	return &StreamEncoder{model: model, includeUsage: includeUsage, created: time.Now().Unix()}
}

type outDelta struct {
	Role             string         `json:"role,omitempty"`
	Content          *string        `json:"content,omitempty"`
	ReasoningContent string         `json:"reasoning_content,omitempty"`
	ToolCalls        []wireToolCall `json:"tool_calls,omitempty"`
}

type outChoice struct {
	Index        int                    `json:"index"`
	Delta        outDelta               `json:"delta"`
	Logprobs     *string                `json:"logprobs"`
	FinishReason *adapters.FinishReason `json:"finish_reason"`
}

type outChunk struct {
	ID      string      `json:"id"`
	Object  string      `json:"object"`
	Created int64       `json:"created"`
	Model   string      `json:"model"`
	Choices []outChoice `json:"choices"`
	Usage   *outUsage   `json:"usage,omitempty"`
}

// Encode returns the SSE bytes for ev; they are valid until the next call.
func (e *StreamEncoder) Encode(ev adapters.StreamEvent) []byte {
	e.buf = e.buf[:0]
	if e.ended {
		return nil
	}
	if ev.Type == adapters.EventStart {
		e.id = completionID(ev.ID)
	}
	e.start()
	switch ev.Type {
	case adapters.EventText:
		if ev.Text != "" {
			e.chunk(outDelta{Content: &ev.Text}, nil)
		}
	case adapters.EventReasoning:
		if ev.Text != "" {
			e.chunk(outDelta{ReasoningContent: ev.Text}, nil)
		}
	case adapters.EventToolCall:
		var tc wireToolCall
		index := ev.ToolIndex
		tc.Index, tc.ID, tc.Type = &index, ev.ToolCallID, "function"
		tc.Function.Name, tc.Function.Arguments = ev.ToolName, ev.Arguments
		e.chunk(outDelta{ToolCalls: []wireToolCall{tc}}, nil)
	case adapters.EventToolArgs:
		var tc wireToolCall
		index := ev.ToolIndex
		tc.Index = &index
		tc.Function.Arguments = ev.Arguments
		e.chunk(outDelta{ToolCalls: []wireToolCall{tc}}, nil)
	case adapters.EventFinish:
		finish := ev.Finish
		e.chunkWith(outDelta{}, &finish, ev.Extra)
	case adapters.EventUsage:
		u := *ev.Usage
		e.usage = &u
	case adapters.EventError:
		e.fail(ev.Err.Type, ev.Err.Code, ev.Err.Message)
	}
	return e.buf
}

// End returns the closing bytes of a stream that completed: the usage
// chunk, if asked for, and [DONE].
func (e *StreamEncoder) End() []byte {
	e.buf = e.buf[:0]
	if e.ended {
		return nil
	}
	e.start()
	e.ended = true
	if e.includeUsage && e.usage != nil {
		e.data(outChunk{ID: e.id, Object: "chat.completion.chunk", Created: e.created, Model: e.model, Choices: []outChoice{}, Usage: outUsageOf(*e.usage)})
	}
	e.buf = append(e.buf, "data: [DONE]\n\n"...)
	return e.buf
}

// Fail returns an error chunk, which ends the stream without [DONE].
func (e *StreamEncoder) Fail(errType, code, message string) []byte {
	e.buf = e.buf[:0]
	e.fail(errType, code, message)
	return e.buf
}

func (e *StreamEncoder) fail(errType, code, message string) {
	if e.ended {
		return
	}
	e.ended = true
	if errType == "" {
		errType = "upstream_error"
	}
	body := struct {
		Error struct {
			Message string  `json:"message"`
			Type    string  `json:"type"`
			Param   *string `json:"param"`
			Code    *string `json:"code"`
		} `json:"error"`
	}{}
	body.Error.Message, body.Error.Type = message, errType
	if code != "" {
		body.Error.Code = &code
	}
	e.data(body)
}

func (e *StreamEncoder) start() {
	if e.started {
		return
	}
	e.started = true
	if e.id == "" {
		e.id = "chatcmpl-portcullis"
	}
	empty := ""
	e.chunk(outDelta{Role: "assistant", Content: &empty}, nil)
}

func (e *StreamEncoder) chunk(d outDelta, finish *adapters.FinishReason) {
	e.chunkWith(d, finish, nil)
}

// chunkWith is chunk with the provider's extra fields (the finish chunk
// carries Perplexity's citations) as more top-level members.
func (e *StreamEncoder) chunkWith(d outDelta, finish *adapters.FinishReason, extra adapters.Extra) {
	b, _ := json.Marshal(outChunk{ID: e.id, Object: "chat.completion.chunk", Created: e.created, Model: e.model,
		Choices: []outChoice{{Delta: d, FinishReason: finish}}})
	e.frame(appendExtra(b, extra))
}

func (e *StreamEncoder) data(v any) {
	b, _ := json.Marshal(v)
	e.frame(b)
}

// frame appends one SSE event of data b.
func (e *StreamEncoder) frame(b []byte) {
	e.buf = append(e.buf, "data: "...)
	e.buf = append(e.buf, b...)
	e.buf = append(e.buf, "\n\n"...)
}
