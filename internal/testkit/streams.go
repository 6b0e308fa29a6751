package testkit

import (
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"

	"portcullis/adapters"
)

// UnifiedStream is a provider's stream read as unified events.
type UnifiedStream interface {
	Next() (adapters.StreamEvent, error)
}

// Joined is what a unified stream added up to.
type Joined struct {
	ID, Model       string
	Text, Reasoning string
	// ToolCalls are the calls begun, their argument fragments joined.
	ToolCalls []adapters.ToolCall
	Finish    adapters.FinishReason
	// Usage is the last usage reported; nil when none was.
	Usage *adapters.Usage
	// Err is the error event that ended the stream, if one did.
	Err *adapters.UpstreamError
	// End is what the last Next returned: io.EOF for a complete stream.
	End error
}

// JoinStream reads a unified stream to its end and joins it, failing the
// test where the stream breaks a promise every decoder keeps: tool calls
// numbered from 0 without gaps, argument fragments only for a call begun,
// usage and error events that carry what they announce, at most one
// finish, nothing after an error, io.EOF again after io.EOF, and an end
// within limit events.
func JoinStream(t testing.TB, s UnifiedStream, limit int) Joined {
	t.Helper()
	var j Joined
	var text, reasoning strings.Builder
	args := []*strings.Builder{}
	for range limit {
		ev, err := s.Next()
		if err != nil {
			j.End = err
			if errors.Is(err, io.EOF) {
				if _, again := s.Next(); !errors.Is(again, io.EOF) {
					t.Fatalf("Next after io.EOF = %v", again)
				}
			}
			j.Text, j.Reasoning = text.String(), reasoning.String()
			for i := range j.ToolCalls {
				j.ToolCalls[i].Arguments = args[i].String()
			}
			return j
		}
		if j.Err != nil {
			t.Fatalf("event %v after the error event", ev.Type)
		}
		switch ev.Type {
		case adapters.EventStart:
			j.ID, j.Model = ev.ID, ev.Model
		case adapters.EventText:
			text.WriteString(ev.Text)
		case adapters.EventReasoning:
			reasoning.WriteString(ev.Text)
		case adapters.EventToolCall:
			if ev.ToolIndex != len(j.ToolCalls) {
				t.Fatalf("tool call %d begun, want %d", ev.ToolIndex, len(j.ToolCalls))
			}
			j.ToolCalls = append(j.ToolCalls, adapters.ToolCall{ID: ev.ToolCallID, Name: ev.ToolName})
			b := &strings.Builder{}
			b.WriteString(ev.Arguments)
			args = append(args, b)
		case adapters.EventToolArgs:
			if ev.ToolIndex < 0 || ev.ToolIndex >= len(j.ToolCalls) {
				t.Fatalf("arguments for tool call %d, only %d begun", ev.ToolIndex, len(j.ToolCalls))
			}
			args[ev.ToolIndex].WriteString(ev.Arguments)
		case adapters.EventFinish:
			if j.Finish != "" {
				t.Fatalf("a second finish %q after %q", ev.Finish, j.Finish)
			}
			j.Finish = ev.Finish
		case adapters.EventUsage:
			if ev.Usage == nil {
				t.Fatal("usage event without usage")
			}
			u := *ev.Usage
			j.Usage = &u
		case adapters.EventError:
			if ev.Err == nil {
				t.Fatal("error event without error")
			}
			j.Err = ev.Err
		default:
			t.Fatalf("unknown event type %d", ev.Type)
		}
	}
	t.Fatalf("the stream did not end within %d events", limit)
	return j
}

// FuzzEncoder runs a fuzz target over a provider's request encoder: any
// inbound request that unified reads (seeded with the OpenAI request
// fixtures and extra) is either refused with a RequestError or encoded as
// valid JSON.
func FuzzEncoder(f *testing.F, unified func(body []byte) (*adapters.Request, error), encode func(*adapters.Request, string) ([]byte, error), extra ...string) {
	for _, name := range []string{"chat_request.json", "tool_call_request.json", "tool_result_request.json"} {
		f.Add(Fixture(name))
	}
	for _, s := range extra {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := unified(body)
		if err != nil {
			return
		}
		out, err := encode(req, "upstream-model")
		if err != nil {
			var re *adapters.RequestError
			if !errors.As(err, &re) {
				t.Fatalf("the encoder failed with %T %v, not a RequestError", err, err)
			}
			return
		}
		if !json.Valid(out) {
			t.Fatalf("the encoder wrote invalid JSON: %s", out)
		}
	})
}
