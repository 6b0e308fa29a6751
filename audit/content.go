package audit

import (
	"cmp"
	"slices"
	"unicode/utf8"

	"go.uber.org/zap/zapcore"
)

// Content is what was said on a call: the prompt and the completion. A
// record holds it only when the policy's decision says log_content, and
// then only after Seal has redacted the secrets in it and bounded it.
type Content struct {
	// Messages are the prompt, the conversation as the client sent it.
	Messages []Message
	// RequestBody is the request as sent, when the gateway could not read
	// the conversation out of it (Messages is then empty).
	RequestBody string
	// Completion is the answer's text; for a stream, its fragments joined.
	Completion string
	// ToolCalls are the tool calls the answer made.
	ToolCalls []ToolCall
	// Truncated says some of the content was cut at the size bound.
	Truncated bool
	// Redactions count the secrets removed, by kind, in kind order.
	Redactions []Redaction
}

// Message is one turn of the prompt.
type Message struct {
	Role string
	// Text is the message's text parts joined; an image is "[image]".
	Text      string
	ToolCalls []ToolCall
	// ToolCallID is the call a tool result answers.
	ToolCallID string
}

// ToolCall is one call of a function tool.
type ToolCall struct {
	ID        string
	Name      string
	Arguments string
}

// Redaction is how many secrets of one kind were removed from the content.
type Redaction struct {
	Kind  string
	Count int
}

// CaptureBytes is how much of each part (the prompt, the completion) a
// gateway should collect for a content bound of limit bytes: a little
// more than the bound, so that a secret which straddles the bound is
// still whole when it is redacted, before Seal cuts to the bound.
func CaptureBytes(limit int) int { return limit + 8<<10 }

// Seal redacts the secrets in every text of the content, then cuts the
// prompt and the completion (with its tool calls) to limit bytes each,
// setting Truncated when it cut anything. Redacting first means a cut
// never leaves part of a secret behind.
func (c *Content) Seal(limit int) {
	found := map[string]int{}
	redact := func(s *string) { *s = redactSecrets(*s, found) }
	redact(&c.RequestBody)
	redact(&c.Completion)
	for i := range c.Messages {
		m := &c.Messages[i]
		redact(&m.Text)
		for j := range m.ToolCalls {
			redact(&m.ToolCalls[j].Arguments)
		}
	}
	for i := range c.ToolCalls {
		redact(&c.ToolCalls[i].Arguments)
	}
	c.Redactions = c.Redactions[:0]
	for kind, n := range found {
		c.Redactions = append(c.Redactions, Redaction{Kind: kind, Count: n})
	}
	slices.SortFunc(c.Redactions, func(a, b Redaction) int { return cmp.Compare(a.Kind, b.Kind) })

	prompt := limit
	cut := func(budget *int, s *string) {
		if len(*s) > *budget {
			*s = truncate(*s, *budget)
			c.Truncated = true
		}
		*budget -= len(*s)
	}
	cut(&prompt, &c.RequestBody)
	for i := range c.Messages {
		m := &c.Messages[i]
		cut(&prompt, &m.Text)
		for j := range m.ToolCalls {
			cut(&prompt, &m.ToolCalls[j].Arguments)
		}
	}
	completion := limit
	cut(&completion, &c.Completion)
	for i := range c.ToolCalls {
		cut(&completion, &c.ToolCalls[i].Arguments)
	}
}

// truncate cuts s to at most n bytes without splitting a character.
func truncate(s string, n int) string {
	if n <= 0 {
		return ""
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// MarshalLogObject implements zapcore.ObjectMarshaler.
func (c *Content) MarshalLogObject(e zapcore.ObjectEncoder) error {
	_ = e.AddArray("messages", zapcore.ArrayMarshalerFunc(func(a zapcore.ArrayEncoder) error {
		for i := range c.Messages {
			_ = a.AppendObject(&c.Messages[i])
		}
		return nil
	}))
	if c.RequestBody != "" {
		e.AddString("request_body", c.RequestBody)
	}
	e.AddString("completion", c.Completion)
	_ = e.AddArray("tool_calls", toolCalls(c.ToolCalls))
	return nil
}

// MarshalLogObject implements zapcore.ObjectMarshaler.
func (m *Message) MarshalLogObject(e zapcore.ObjectEncoder) error {
	e.AddString("role", m.Role)
	e.AddString("text", m.Text)
	if len(m.ToolCalls) > 0 {
		_ = e.AddArray("tool_calls", toolCalls(m.ToolCalls))
	}
	if m.ToolCallID != "" {
		e.AddString("tool_call_id", m.ToolCallID)
	}
	return nil
}

// MarshalLogObject implements zapcore.ObjectMarshaler.
func (t *ToolCall) MarshalLogObject(e zapcore.ObjectEncoder) error {
	e.AddString("id", t.ID)
	e.AddString("name", t.Name)
	e.AddString("arguments", t.Arguments)
	return nil
}

func toolCalls(calls []ToolCall) zapcore.ArrayMarshaler {
	return zapcore.ArrayMarshalerFunc(func(a zapcore.ArrayEncoder) error {
		for i := range calls {
			_ = a.AppendObject(&calls[i])
		}
		return nil
	})
}

func redactions(rs []Redaction) zapcore.ArrayMarshaler {
	return zapcore.ArrayMarshalerFunc(func(a zapcore.ArrayEncoder) error {
		for _, r := range rs {
			_ = a.AppendObject(zapcore.ObjectMarshalerFunc(func(o zapcore.ObjectEncoder) error {
				o.AddString("kind", r.Kind)
				o.AddInt("count", r.Count)
				return nil
			}))
		}
		return nil
	})
}
