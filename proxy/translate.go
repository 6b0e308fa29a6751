package proxy

import (
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"go.uber.org/zap"

	"portcullis/adapters"
	"portcullis/adapters/anthropic"
)

// translateResponse decodes a provider's whole answer and writes it in the
// client's format.
func (s *Server) translateResponse(c *call, rt *route, cc *chatCall, resp *http.Response) {
	body, ok := s.readResponse(c, resp)
	if !ok {
		return
	}
	answer, err := rt.codec().decodeResponse(body)
	if err != nil {
		c.fail(http.StatusBadGateway, "upstream_broken", "upstream_error", "upstream_bad_response", "",
			"provider "+c.rec.Provider+" sent an answer the gateway could not read")
		return
	}
	c.rec.ModelServed = answer.Model
	s.recordUsage(c, &answer.Usage)
	if c.transcript != nil {
		c.transcript.answer(answer)
	}
	out := cc.client.encodeResponse(answer, cc.model)
	h := c.w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(out)))
	c.w.WriteHeader(http.StatusOK)
	if _, err := c.w.Write(out); err != nil {
		s.clientGone(c)
	}
}

// readResponse reads a non-streamed upstream body, bounded.
func (s *Server) readResponse(c *call, resp *http.Response) ([]byte, bool) {
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err == nil && len(body) > maxResponseBytes {
		c.fail(http.StatusBadGateway, "upstream_too_large", "upstream_error", "upstream_response_too_large", "",
			"provider "+c.rec.Provider+" sent a response larger than "+strconv.Itoa(maxResponseBytes>>20)+" MiB")
		return nil, false
	}
	if err != nil {
		if c.r.Context().Err() != nil {
			s.clientGone(c)
			return nil, false
		}
		c.fail(http.StatusBadGateway, "upstream_broken", "upstream_error", "upstream_broken", "", "provider "+c.rec.Provider+" broke off its response")
		return nil, false
	}
	return body, true
}

func (s *Server) recordUsage(c *call, u *adapters.Usage) {
	c.spend.usage = *u
	if c.spend.counted == 0 {
		c.spend.earlyInput = int64(u.PromptTokens)
	}
	c.rec.PromptTokens = u.PromptTokens
	c.rec.CompletionTokens = u.CompletionTokens
	c.rec.UsageReported = true
}

// translateStream decodes a provider's stream event by event and writes
// each in the client's format, flushing when no further upstream event is
// already waiting, as relayStream does.
func (s *Server) translateStream(c *call, rt *route, cc *chatCall, resp *http.Response) {
	rc := startStream(c)
	events := rt.codec().decodeStream(resp.Body)
	out := cc.client.encodeStream(cc.model, cc.includeUsage)
	var streamID string
	for {
		ev, err := events.Next()
		if err != nil {
			switch {
			case c.r.Context().Err() != nil:
				s.clientGone(c)
			case errors.Is(err, io.EOF):
				if _, err := c.w.Write(out.End()); err != nil {
					s.clientGone(c)
					return
				}
				_ = rc.Flush()
			default:
				s.translatedStreamBroke(c, rc, out, err)
			}
			return
		}
		if c.transcript != nil {
			c.transcript.event(ev)
		}
		switch ev.Type {
		case adapters.EventStart:
			c.rec.ModelServed, streamID = ev.Model, ev.ID
		case adapters.EventUsage:
			s.recordUsage(c, ev.Usage)
		case adapters.EventText, adapters.EventToolCall:
			c.delivered++
			if c.rec.TimeToFirstToken == 0 {
				c.rec.TimeToFirstToken = time.Since(c.start)
			}
		case adapters.EventError:
			c.rec.ErrorClass, c.rec.Error = "upstream_stream_error", ev.Err.Message
		}
		if c.countOutput(unifiedOutput(&ev)) {
			if cc.client.format() == formatOpenAI {
				s.cutOpenAIStream(c, rc, streamID, cc.model, cc.includeUsage)
				return
			}
			c.rec.StreamCut = c.cutReason()
			// Encode's bytes are only valid until the next call.
			tail := append([]byte(nil), out.Encode(adapters.StreamEvent{Type: adapters.EventFinish, Finish: adapters.FinishLength})...)
			tail = append(tail, out.End()...)
			s.endCutStream(c, rc, tail)
			return
		}
		var b []byte
		if ev.Type == adapters.EventError {
			// In the client's words, by kind: a provider's own error type
			// (Gemini's UNAVAILABLE, Bedrock's exceptions) means nothing to it.
			b = out.Fail(ev.Err)
		} else {
			b = out.Encode(ev)
		}
		if len(b) > 0 {
			if _, err := c.w.Write(b); err != nil {
				s.clientGone(c)
				return
			}
		}
		if events.Buffered() > 0 {
			continue
		}
		if err := rc.Flush(); err != nil {
			s.clientGone(c)
			return
		}
	}
}

// startStream sends the headers of an event stream to the client.
func startStream(c *call) *http.ResponseController {
	h := c.w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	c.w.WriteHeader(http.StatusOK)
	return http.NewResponseController(c.w)
}

// translatedStreamBroke ends a translated stream whose upstream failed,
// with an error event in the client's format.
func (s *Server) translatedStreamBroke(c *call, rc *http.ResponseController, out streamEncoder, err error) {
	countDelivered(c)
	c.rec.ErrorClass = "upstream_stream_broken"
	c.rec.Error = "the upstream stream broke off: " + err.Error()
	c.logger().Warn("upstream stream broke off", zap.String("provider", c.rec.Provider), zap.Error(err))
	c.w.Write(out.Fail(&adapters.UpstreamError{Kind: adapters.ErrServer, Type: "upstream_error", Code: "upstream_stream_broken",
		Message: "the upstream provider broke off the stream; the answer is incomplete"}))
	_ = rc.Flush()
}

// relayAnthropicStream forwards an Anthropic event stream to an Anthropic
// client unchanged, reading the model and usage on the way.
func (s *Server) relayAnthropicStream(c *call, resp *http.Response) {
	rc := startStream(c)
	events := adapters.NewEventReader(resp.Body)
	meter := anthropic.NewStreamObserver()
	blocks, openBlock := 0, -1
	for {
		ev, err := events.Next()
		if err != nil {
			switch {
			case c.r.Context().Err() != nil:
				s.clientGone(c)
			case !errors.Is(err, io.EOF) || !meter.Done():
				if errors.Is(err, io.EOF) {
					err = io.ErrUnexpectedEOF
				}
				s.translatedStreamBroke(c, rc, anthropicStream{anthropic.NewStreamEncoder("")}, err)
			}
			return
		}
		switch string(ev.Name) {
		case "content_block_start":
			openBlock, blocks = blocks, blocks+1
		case "content_block_stop":
			openBlock = -1
		}
		var output int64
		for _, u := range meter.Observe(ev) {
			output += unifiedOutput(&u)
			if c.transcript != nil {
				c.transcript.event(u)
			}
			switch u.Type {
			case adapters.EventStart:
				c.rec.ModelServed = u.Model
			case adapters.EventUsage:
				s.recordUsage(c, u.Usage)
			case adapters.EventText, adapters.EventToolCall:
				c.delivered++
				if c.rec.TimeToFirstToken == 0 {
					c.rec.TimeToFirstToken = time.Since(c.start)
				}
			case adapters.EventError:
				c.rec.ErrorClass, c.rec.Error = "upstream_stream_error", u.Err.Message
			}
		}
		if c.countOutput(output) {
			if string(ev.Name) == "content_block_start" {
				openBlock = -1 // not relayed: nothing to close
			}
			s.cutAnthropicStream(c, rc, openBlock)
			return
		}
		if _, err := c.w.Write(ev.Raw); err != nil {
			s.clientGone(c)
			return
		}
		if events.Buffered() > 0 {
			continue
		}
		if err := rc.Flush(); err != nil {
			s.clientGone(c)
			return
		}
	}
}

// readAnthropicSummary reads the model and usage of a Messages response.
func readAnthropicSummary(body []byte) (string, *adapters.Usage) {
	answer, err := anthropic.DecodeResponse(body)
	if err != nil || answer.ID == "" {
		return "", nil
	}
	return answer.Model, &answer.Usage
}
