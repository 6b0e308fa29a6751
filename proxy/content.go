package proxy

import (
	"errors"
	"strings"
	"unicode/utf8"

	"portcullis/adapters"
	"portcullis/adapters/openai"
	"portcullis/audit"
)

// transcript collects what a call said — the prompt, then the answer as it
// is relayed — for a call whose decision says log_content. It keeps a
// little more of each than the configured bound (audit.CaptureBytes), and
// the record gets it redacted and cut to the bound (audit.Content.Seal).
// Calls without log_content have none, and pay a nil check per event.
type transcript struct {
	content audit.Content
	// completion and toolArgs (one per content.ToolCalls) collect the
	// answer's fragments.
	completion strings.Builder
	toolArgs   []*strings.Builder
	// room is what may still be kept of the prompt and of the answer.
	promptRoom, answerRoom int
	// tools maps a streamed tool call's index to content.ToolCalls.
	tools map[int]int
	// decode reads a passed-through, non-streamed answer.
	decode func([]byte) (*adapters.Response, error)
	// chunks reads a passed-through OpenAI stream on the way.
	chunks *openai.StreamDecoder
}

// errNoConversation is a call whose request holds no conversation to read
// (embeddings, token counting): its content is the body as sent.
var errNoConversation = errors.New("the request holds no conversation")

// keepContent starts the call's transcript with the prompt, or with the
// request body as sent when the conversation cannot be read out of it.
func (s *Server) keepContent(c *call, cc *chatCall, rt *route) {
	room := audit.CaptureBytes(s.cfg.Audit.ContentMaxBytes)
	t := &transcript{promptRoom: room, answerRoom: room, decode: rt.codec().decodeResponse}
	c.transcript = t
	var b strings.Builder
	var req *adapters.Request
	err := errNoConversation
	if cc.unified != nil {
		req, err = cc.unified()
	}
	if err != nil {
		t.add(&b, string(cc.body), &t.promptRoom)
		t.content.RequestBody = b.String()
		return
	}
	t.content.Messages = make([]audit.Message, 0, len(req.Messages))
	for _, m := range req.Messages {
		am := audit.Message{Role: string(m.Role), ToolCallID: m.ToolCallID}
		b.Reset()
		for i, p := range m.Content {
			if i > 0 {
				t.add(&b, "\n", &t.promptRoom)
			}
			if p.Type == adapters.PartImage {
				t.add(&b, "[image]", &t.promptRoom)
				continue
			}
			t.add(&b, p.Text, &t.promptRoom)
		}
		am.Text = b.String()
		for _, tc := range m.ToolCalls {
			b.Reset()
			t.add(&b, tc.Arguments, &t.promptRoom)
			am.ToolCalls = append(am.ToolCalls, audit.ToolCall{ID: tc.ID, Name: tc.Name, Arguments: b.String()})
		}
		t.content.Messages = append(t.content.Messages, am)
	}
}

// add appends s to b while there is room, marking the content truncated
// when there is not.
func (t *transcript) add(b *strings.Builder, s string, room *int) {
	if len(s) > *room {
		n := max(*room, 0)
		for n > 0 && !utf8.RuneStart(s[n]) {
			n--
		}
		s = s[:n]
		t.content.Truncated = true
	}
	*room -= len(s)
	b.WriteString(s)
}

// toolCall begins a tool call of the answer.
func (t *transcript) toolCall(id, name, args string) {
	t.content.ToolCalls = append(t.content.ToolCalls, audit.ToolCall{ID: id, Name: name})
	b := &strings.Builder{}
	t.add(b, args, &t.answerRoom)
	t.toolArgs = append(t.toolArgs, b)
}

// answer keeps a whole (non-streamed) answer.
func (t *transcript) answer(resp *adapters.Response) {
	t.add(&t.completion, resp.Text, &t.answerRoom)
	for _, tc := range resp.ToolCalls {
		t.toolCall(tc.ID, tc.Name, tc.Arguments)
	}
}

// response keeps a passed-through answer's body, as decoded.
func (t *transcript) response(body []byte) {
	if resp, err := t.decode(body); err == nil {
		t.answer(resp)
	}
}

// event keeps a streamed answer's text and tool calls.
func (t *transcript) event(ev adapters.StreamEvent) {
	switch ev.Type {
	case adapters.EventText:
		t.add(&t.completion, ev.Text, &t.answerRoom)
	case adapters.EventToolCall:
		if t.tools == nil {
			t.tools = map[int]int{}
		}
		t.tools[ev.ToolIndex] = len(t.content.ToolCalls)
		t.toolCall(ev.ToolCallID, ev.ToolName, ev.Arguments)
	case adapters.EventToolArgs:
		if i, ok := t.tools[ev.ToolIndex]; ok {
			t.add(t.toolArgs[i], ev.Arguments, &t.answerRoom)
		}
	}
}

// chunk keeps what one relayed OpenAI stream chunk says.
func (t *transcript) chunk(data []byte) {
	if t.chunks == nil {
		t.chunks = openai.NewStreamObserver()
	}
	for _, ev := range t.chunks.Observe(data) {
		t.event(ev)
	}
}

// seal redacts and bounds the transcript for the record.
func (t *transcript) seal(limit int) *audit.Content {
	c := &t.content
	c.Completion = t.completion.String()
	for i := range c.ToolCalls {
		c.ToolCalls[i].Arguments = t.toolArgs[i].String()
	}
	c.Seal(limit)
	return c
}
