package proxy

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"time"

	"go.uber.org/zap"

	"portcullis/adapters"
	"portcullis/adapters/openai"
	"portcullis/usage"
)

// relayStream forwards an OpenAI event stream event by event, flushing as
// soon as no further event is already waiting. It reads the usage and model on the way, and hides the
// usage chunk the gateway asked for on the client's behalf when the client
// did not ask for it. If the client goes away, returning cancels the
// upstream request (its context is the client's).
func (s *Server) relayStream(c *call, resp *http.Response, clientWantsUsage bool) {
	h := c.w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	// The headers go out with the first event, which is flushed at once.
	c.w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(c.w)

	events := adapters.NewEventReader(resp.Body)
	sawModel, sawEnd, sawFinish := false, false, false
	var streamID string
	for {
		ev, err := events.Next()
		if err != nil {
			switch {
			case sawEnd:
				// The whole answer was relayed: a client that hangs up
				// right after [DONE] did not abandon the call.
			case c.r.Context().Err() != nil:
				s.clientGone(c)
			case !errors.Is(err, io.EOF):
				s.streamBroke(c, rc, err)
			case sawFinish:
				// Some OpenAI-compatible upstreams (Perplexity) end a
				// complete answer without [DONE]; the client still gets one.
				if _, err := c.w.Write([]byte("data: [DONE]\n\n")); err != nil {
					s.clientGone(c)
					return
				}
				_ = rc.Flush()
			default:
				// An OpenAI stream ends with [DONE] or an error event;
				// anything else was cut short.
				s.streamBroke(c, rc, io.ErrUnexpectedEOF)
			}
			return
		}
		if c.transcript != nil {
			c.transcript.chunk(ev.Data)
		}
		chunk := openai.ClassifyChunk(ev.Data)
		sawEnd = sawEnd || chunk.Done || chunk.IsError
		sawFinish = sawFinish || chunk.Finished
		if chunk.HasUsage || (!sawModel && len(ev.Data) > 0 && !chunk.Done) {
			summary := openai.ReadSummary(ev.Data)
			if summary.Model != "" {
				c.rec.ModelServed, sawModel = summary.Model, true
			}
			if u := summary.Usage; u != nil {
				s.recordUsage(c, u)
			}
		}
		if chunk.IsError {
			summary := openai.ReadSummary(ev.Data)
			c.rec.ErrorClass = "upstream_stream_error"
			if summary.Error != nil {
				c.rec.Error = summary.Error.Message
			}
		}
		if streamID == "" && !chunk.Done {
			streamID = chunkID(ev.Data)
		}
		if !chunk.Done && !chunk.UsageOnly && c.countOutput(usage.EstimateOutput(ev.Data)) {
			model := c.rec.ModelServed
			if model == "" {
				model = c.rec.Model
			}
			s.cutOpenAIStream(c, rc, streamID, model, clientWantsUsage)
			return
		}
		// The usage the gateway asked for on the client's behalf, and
		// Azure's filter-only chunks, are not for the client.
		skip := (chunk.UsageOnly && !clientWantsUsage) || chunk.FilterOnly
		if !skip {
			if _, err := c.w.Write(ev.Raw); err != nil {
				s.clientGone(c)
				return
			}
		}
		if carriesContent(ev.Data) {
			c.delivered++
			if c.rec.TimeToFirstToken == 0 {
				c.rec.TimeToFirstToken = time.Since(c.start)
			}
		}
		// Flush per event, except that events which arrived together
		// leave together: nothing waits for data that is not here yet.
		if events.Buffered() > 0 {
			continue
		}
		if err := rc.Flush(); err != nil {
			s.clientGone(c)
			return
		}
	}
}

// clientGone records a call that ended because its context did: the
// client went away, or the shutdown grace period ran out.
func (s *Server) clientGone(c *call) {
	c.w.status = statusClientClosed
	if s.cutting.Load() {
		c.rec.ErrorClass = "shutdown"
		c.rec.Error = "the gateway shut down before the call finished (server.shutdown_grace ran out)"
		return
	}
	c.rec.ErrorClass = "client_disconnected"
	c.rec.Error = "the client went away before the call finished"
}

// streamBroke ends a stream whose upstream failed after bytes reached the
// client: the client gets a well-formed error event, so it knows the answer
// is incomplete.
func (s *Server) streamBroke(c *call, rc *http.ResponseController, err error) {
	countDelivered(c)
	c.rec.ErrorClass = "upstream_stream_broken"
	c.rec.Error = "the upstream stream broke off: " + err.Error()
	c.logger().Warn("upstream stream broke off", zap.String("provider", c.rec.Provider), zap.Error(err))
	c.w.Write([]byte(`data: {"error":{"message":"the upstream provider broke off the stream; the answer is incomplete","type":"upstream_error","param":null,"code":"upstream_stream_broken"}}` + "\n\n"))
	_ = rc.Flush()
}

// countDelivered counts the content events a broken stream delivered as
// its completion tokens (a provider streams about one token per event),
// unless the provider reported more before it broke off.
func countDelivered(c *call) {
	if c.delivered > c.rec.CompletionTokens {
		c.rec.CompletionTokens, c.rec.UsageEstimated = c.delivered, true
	}
}

// carriesContent reports whether a chat chunk holds some of the answer: a
// non-empty text delta or a tool call. The role-only first chunk and the
// usage chunk do not. A cheap byte test.
func carriesContent(data []byte) bool {
	if bytes.Contains(data, []byte(`"tool_calls":[{`)) {
		return true
	}
	i := bytes.Index(data, []byte(`"content":"`))
	return i >= 0 && i+len(`"content":"`) < len(data) && data[i+len(`"content":"`)] != '"'
}
