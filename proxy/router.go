package proxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"portcullis/adapters"
	"portcullis/audit"
	"portcullis/authz"
	"portcullis/config"
)

// router is where a model name goes: its targets, how a call chooses
// among them (selection.go), how often a failing target is tried again
// (retry.go) and which targets are out of rotation (cooldown.go). A model
// of one provider, as most are, is a router of one target.
type router struct {
	model    string
	strategy string
	targets  []*route
	selector selector
	retry    retryPolicy
	// contextFallback is the model that gets a prompt too long for this
	// one's targets; nil for none.
	contextFallback *router
}

// route is one target of a model: a provider, the model it is asked for,
// the target's own limits and its health.
type route struct {
	model         string
	upstreamModel string
	provider      adapters.Provider
	// forceUsage turns on stream_options.include_usage upstream, for
	// OpenAI-type providers, so streamed calls always report usage.
	forceUsage bool
	weight     int
	// maxTokens caps the output of the calls this target serves; 0 for none.
	maxTokens int
	timeouts  config.Timeouts
	health    *health
	// inflight counts the calls whose attempt on this target has not ended.
	inflight atomic.Int64
}

// newRouter builds a model's router from its configuration, with the
// targets whose provider is enabled; disabled names the others.
func (s *Server) newRouter(m config.Model, providers map[string]adapters.Provider) (rtr *router, disabled []string) {
	rtr = &router{model: m.Name, strategy: m.Strategy, selector: newSelector(m.Strategy), retry: newRetryPolicy(m.Retry)}
	for _, t := range m.Targets {
		p, ok := providers[t.Provider]
		if !ok {
			disabled = append(disabled, t.Provider)
			continue
		}
		rtr.targets = append(rtr.targets, &route{
			model:         m.Name,
			upstreamModel: t.UpstreamModel,
			provider:      p,
			forceUsage:    true,
			weight:        t.Weight,
			maxTokens:     t.MaxTokens,
			timeouts:      m.Timeouts.Over(t.Timeouts),
			health:        &health{threshold: m.Cooldown.Failures, period: m.Cooldown.Period.Std(), now: s.clock.now},
		})
	}
	return rtr, disabled
}

// clock is time.Now, moved on by tests.
type clock struct{ offset atomic.Int64 }

func (c *clock) now() time.Time { return time.Now().Add(time.Duration(c.offset.Load())) }

// targetsFor are the model's targets that can serve cc, in the order the
// selector chose for this call.
func (rtr *router) targetsFor(cc *chatCall) []*route {
	ordered := rtr.selector.order(rtr.targets)
	if cc.endpoint == nil {
		return ordered
	}
	out := make([]*route, 0, len(ordered))
	for _, rt := range ordered {
		if cc.endpoint.servedBy(rt.provider) {
			out = append(out, rt)
		}
	}
	return out
}

// forward sends an allowed call to its model's targets until one
// answers: in the selector's order, each target tried as often as the
// model's retry says, then the next; when the prompt is too long, the
// context fallback's targets. Only an answer reaches the client, or, when
// no target answered, the last failure.
func (s *Server) forward(c *call, cc *chatCall, rtr *router, d *authz.Decision) {
	enc := &requestEncoder{s: s, c: c, cc: cc, d: d}
	ctx := c.r.Context()
	var last *failure
	var lastRT *route
	var refused error // the first target's refusal of the request, if one refused it
	model := rtr
	for model != nil {
		next := (*router)(nil)
	targets:
		for _, rt := range model.targetsFor(cc) {
			ok, probe := rt.health.admit()
			if !ok {
				continue
			}
			body, unified, err := enc.encode(rt)
			if err != nil {
				// This target's format cannot carry the request; another's may.
				rt.health.released(probe)
				if refused == nil {
					refused = err
				}
				c.logger().Debug("target cannot carry the request; skipped", zap.String("provider", rt.provider.Name()), zap.Error(err))
				continue
			}
			for n := 1; n <= model.retry.attempts; n++ {
				var wait time.Duration
				if n > 1 {
					if ok, probe = rt.health.admit(); !ok {
						break // this call's failures took it out
					}
					if wait, ok = model.retry.wait(n-1, last.retryAfter); !ok || !pause(ctx, wait) {
						rt.health.released(probe)
						if ctx.Err() != nil {
							s.clientGone(c)
							return
						}
						break
					}
				}
				f := s.attempt(c, cc, rt, body, unified, wait, probe)
				if f == nil {
					return
				}
				last, lastRT = f, rt
				if !f.retry {
					break
				}
			}
			switch {
			case last.contextLength && model == rtr && rtr.contextFallback != nil:
				next = rtr.contextFallback
				break targets
			case !last.next:
				s.answerFailure(c, lastRT, cc, last)
				return
			}
		}
		model = next
	}
	switch {
	case last != nil:
		s.answerFailure(c, lastRT, cc, last)
	case refused != nil:
		s.refuseRequest(c, refused)
	default:
		s.allCoolingDown(c, rtr)
	}
}

// requestEncoder encodes a call's request for each target it tries:
// passed through to a provider of the client's format, translated for any
// other, with the decision's edits and the target's own cap applied.
type requestEncoder struct {
	s  *Server
	c  *call
	cc *chatCall
	d  *authz.Decision
	// unified is the request decoded for translation, once one is needed.
	unified    *adapters.Request
	unifiedErr error
	decoded    bool
}

func (e *requestEncoder) encode(rt *route) ([]byte, *adapters.Request, error) {
	cc := e.cc
	if cc.endpoint != nil || rt.codec().format() == cc.client.format() {
		if rt.maxTokens > 0 && cc.reparse != nil {
			// The target's cap must not stay on the request for the
			// next target: it gets a request of its own.
			native, passthrough, err := cc.reparse()
			if err != nil {
				return nil, nil, err
			}
			applyEdits(native, e.d)
			native.CapMaxTokens(rt.maxTokens)
			body, err := passthrough(rt.upstreamModel, rt.forceUsage)
			return body, nil, err
		}
		body, err := cc.passthrough(rt.upstreamModel, rt.forceUsage)
		return body, nil, err
	}
	if !e.decoded {
		e.decoded = true
		if e.unified, e.unifiedErr = cc.unified(); e.unifiedErr == nil {
			applyEdits(e.unified, e.d)
		}
	}
	if e.unifiedErr != nil {
		return nil, nil, e.unifiedErr
	}
	u := *e.unified
	u.CapMaxTokens(rt.maxTokens)
	body, err := rt.codec().encodeRequest(&u, rt.upstreamModel)
	if len(u.Dropped) > 0 {
		e.c.logger().Debug("fields dropped in translation", zap.Strings("fields", u.Dropped))
	}
	return body, &u, err
}

// applyEdits applies a decision that was already enforced on the request
// as sent (applyTools) to another form of it: the same tools stripped,
// the same cap.
func applyEdits(req decidable, d *authz.Decision) {
	if d.Tools.Restricted && d.Tools.OnViolation == authz.ToolsStrip {
		req.StripTools(d.Tools.Permits)
	}
	req.CapMaxTokens(d.MaxTokens)
}

// attempt sends the call to one target. It returns nil once the call is
// answered — the target's answer relayed, however the relay ended, or the
// client gone — and otherwise the failure, with nothing sent to the
// client, so that another attempt may answer instead. probe says the
// attempt is a half-open target's probe.
func (s *Server) attempt(c *call, cc *chatCall, rt *route, body []byte, unified *adapters.Request, wait time.Duration, probe bool) *failure {
	rt.inflight.Add(1)
	defer rt.inflight.Add(-1)
	ctx := c.r.Context()
	to := rt.timeouts
	var cancel context.CancelCauseFunc
	if to.FirstByte > 0 || to.Idle > 0 || to.Total > 0 {
		ctx, cancel = context.WithCancelCause(ctx)
		defer cancel(nil)
	}
	if to.Total > 0 {
		var stop context.CancelFunc
		ctx, stop = context.WithTimeoutCause(ctx, to.Total.Std(), errTotalTimeout)
		defer stop()
	}
	if to.Connect > 0 {
		ctx = adapters.WithConnectTimeout(ctx, to.Connect.Std())
	}
	var firstByte *time.Timer
	if to.FirstByte > 0 {
		firstByte = time.AfterFunc(to.FirstByte.Std(), func() { cancel(errFirstByteTimeout) })
		defer firstByte.Stop()
	}

	path := rt.codec().path(rt.upstreamModel, cc.stream)
	if cc.endpoint != nil {
		path = cc.endpoint.path
	}
	t := &try{s: s, c: c, rt: rt, n: len(c.rec.Attempts) + 1, probe: probe,
		a:    audit.Attempt{Provider: rt.provider.Name(), UpstreamModel: rt.upstreamModel, Wait: wait},
		sent: time.Now(), span: s.startSpan(c, "upstream", trace.SpanKindClient)}

	resp, err := rt.provider.Send(ctx, &adapters.Call{Path: path, Body: body, Stream: cc.stream, Model: rt.upstreamModel})
	// The record keeps the latency of the attempt that answered, or else
	// of the last one.
	c.rec.UpstreamLatency = time.Since(t.sent)
	if err != nil {
		if c.r.Context().Err() != nil {
			return t.gone(0)
		}
		return t.failed(0, noAnswer(ctx, "upstream_unreachable", err))
	}
	if resp.StatusCode >= 400 {
		raw, rerr := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if rerr != nil && c.r.Context().Err() != nil {
			return t.gone(resp.StatusCode)
		}
		f := classifyError(resp.StatusCode, rt.codec().decodeError(resp.StatusCode, resp.Header, raw))
		resp.Body = io.NopCloser(bytes.NewReader(raw))
		f.resp = resp
		return t.failed(resp.StatusCode, f)
	}
	// Nothing has reached the client until the provider's first byte is
	// here: until then a broken or silent answer is one more failure.
	first, err := firstBytes(resp.Body)
	if firstByte != nil {
		firstByte.Stop()
	}
	if err != nil {
		resp.Body.Close()
		if c.r.Context().Err() != nil {
			return t.gone(resp.StatusCode)
		}
		return t.failed(resp.StatusCode, noAnswer(ctx, "upstream_broken", err))
	}
	if f := openingError(rt, resp, first); f != nil {
		resp.Body.Close()
		return t.failed(resp.StatusCode, f)
	}
	endAttemptSpan(t.span, rt, t.n, resp.StatusCode, "")
	resp.Body = &attemptBody{first: first, body: resp.Body, ctx: ctx, cancel: cancel, idle: to.Idle.Std()}
	defer resp.Body.Close()

	// The call is this target's now.
	c.rec.Provider = rt.provider.Name()
	c.rec.UpstreamModel = rt.upstreamModel
	c.rec.UpstreamRequestID = upstreamRequestID(resp.Header)
	announce(c, rt, t.n)
	if c.transcript != nil {
		c.transcript.decode = rt.codec().decodeResponse
	}
	s.relay(c, rt, cc, resp, unified != nil)
	switch c.rec.ErrorClass {
	case "upstream_stream_broken", "upstream_broken":
		rt.health.failed()
	case "client_disconnected", "shutdown":
		rt.health.released(probe)
	default:
		rt.health.succeeded()
	}
	t.done(resp.StatusCode, c.rec.ErrorClass)
	return nil
}

// try is the bookkeeping of one attempt: its entry in the record, its
// span and its verdict on the target's health.
type try struct {
	s     *Server
	c     *call
	rt    *route
	n     int
	probe bool
	a     audit.Attempt
	sent  time.Time
	span  trace.Span
}

// done adds the attempt to the record.
func (t *try) done(status int, class string) {
	t.a.Status, t.a.ErrorClass, t.a.Duration = status, class, time.Since(t.sent)
	t.c.rec.Attempts = append(t.c.rec.Attempts, t.a)
}

// gone ends an attempt the client abandoned: the call is over.
func (t *try) gone(status int) *failure {
	t.rt.health.released(t.probe)
	t.s.clientGone(t.c)
	endAttemptSpan(t.span, t.rt, t.n, status, t.c.rec.ErrorClass)
	t.done(status, t.c.rec.ErrorClass)
	return nil
}

// failed ends an attempt that got no usable answer.
func (t *try) failed(status int, f *failure) *failure {
	if f.counts() {
		t.rt.health.failed()
	} else {
		t.rt.health.succeeded()
	}
	if f.err != nil {
		t.c.logger().Warn("upstream attempt failed", zap.String("provider", t.rt.provider.Name()),
			zap.Int("attempt", t.n), zap.String("class", f.class), zap.Error(f.err))
	}
	endAttemptSpan(t.span, t.rt, t.n, status, f.class)
	t.done(status, f.class)
	return f
}

// openingError reads a stream that opens with a retryable error event
// instead of an answer — Anthropic answers 200 and then overloaded_error
// when it cannot start one — as the failure it is: nothing of an answer
// was sent, so another attempt may answer unseen. Should none, the client
// gets the error with the status it stands for (529 overloaded, 429,
// 500). nil for any other opening.
func openingError(rt *route, resp *http.Response, first []byte) *failure {
	if rt.codec().format() != formatAnthropic || !bytes.HasPrefix(first, []byte("event: error\n")) {
		return nil
	}
	event, _, complete := bytes.Cut(first, []byte("\n\n"))
	_, data, found := bytes.Cut(event, []byte("\ndata: "))
	if !complete || !found {
		return nil
	}
	e := rt.codec().decodeError(resp.StatusCode, resp.Header, data)
	status := http.StatusInternalServerError
	switch {
	case !e.Retryable:
		return nil
	case e.Kind == adapters.ErrOverloaded:
		status = 529
	case e.Kind == adapters.ErrRateLimit:
		status = http.StatusTooManyRequests
	}
	f := classifyError(status, e)
	f.resp = &http.Response{StatusCode: status, Header: resp.Header, Body: io.NopCloser(bytes.NewReader(data))}
	return f
}

// noAnswer is an attempt that got no usable answer: a retryable failure,
// classed as an attempt time-out when one of those ended it.
func noAnswer(ctx context.Context, class string, err error) *failure {
	f := &failure{class: class, retry: true, next: true, err: err}
	if cause := context.Cause(ctx); isAttemptTimeout(cause) {
		f.class, f.timeout, f.err = "upstream_timeout", cause, cause
	}
	return f
}

// relay passes the target's answer on to the client, or translates it.
func (s *Server) relay(c *call, rt *route, cc *chatCall, resp *http.Response, translated bool) {
	stream := cc.stream && isStream(resp.Header.Get("Content-Type"))
	c.spend.answered, c.spend.streamed = true, stream
	if stream {
		span := s.startSpan(c, "stream", trace.SpanKindInternal)
		defer endStreamSpan(span, c)
	}
	switch {
	case translated && stream:
		s.translateStream(c, rt, cc, resp)
	case translated:
		s.translateResponse(c, rt, cc, resp)
	case cc.client.format() == formatAnthropic && stream:
		s.relayAnthropicStream(c, resp)
	case cc.client.format() == formatAnthropic:
		s.relayResponse(c, resp, readAnthropicSummary)
	case stream:
		s.relayStream(c, resp, cc.includeUsage)
	default:
		s.relayResponse(c, resp, readOpenAISummary)
	}
}

// announce names the target that serves the call, and how many attempts
// it took, in the response headers.
func announce(c *call, rt *route, attempts int) {
	h := c.w.Header()
	h.Set("X-Portcullis-Provider", rt.provider.Name())
	h.Set("X-Portcullis-Model", rt.upstreamModel)
	h.Set("X-Portcullis-Attempts", strconv.Itoa(attempts))
}

func upstreamRequestID(h http.Header) string {
	if id := h.Get("X-Request-Id"); id != "" {
		return id
	}
	return h.Get("Request-Id") // Anthropic's name for it
}

// answerFailure answers a call no target could: with the last provider's
// error in the client's format, or, when it sent none, a 502 or a 504.
func (s *Server) answerFailure(c *call, rt *route, cc *chatCall, f *failure) {
	c.rec.Provider = rt.provider.Name()
	c.rec.UpstreamModel = rt.upstreamModel
	announce(c, rt, len(c.rec.Attempts))
	name := rt.provider.Name()
	switch {
	case f.resp != nil:
		c.rec.UpstreamRequestID = upstreamRequestID(f.resp.Header)
		s.relayUpstreamError(c, rt, cc, f.resp)
	case f.timeout != nil:
		c.fail(http.StatusGatewayTimeout, "upstream_timeout", "upstream_error", "upstream_timeout", "",
			"provider "+name+" did not answer in time: "+f.timeout.Error())
	case f.class == "upstream_broken":
		c.fail(http.StatusBadGateway, "upstream_broken", "upstream_error", "upstream_broken", "",
			"provider "+name+" broke off its answer before sending any of it")
	default:
		s.upstreamUnreachable(c.r.Context(), c, f.err)
	}
}

// allCoolingDown answers a call whose every target is out of rotation.
func (s *Server) allCoolingDown(c *call, rtr *router) {
	soonest := time.Duration(0)
	for _, rt := range rtr.targets {
		if _, openFor, _ := rt.health.state(); openFor > 0 && (soonest == 0 || openFor < soonest) {
			soonest = openFor
		}
	}
	secs := max(int((soonest+time.Second-1)/time.Second), 1)
	c.w.Header().Set("Retry-After", strconv.Itoa(secs))
	c.fail(http.StatusServiceUnavailable, "upstream_cooling_down", "server_error", "targets_cooling_down", "",
		"every provider of the model "+strconv.Quote(rtr.model)+" is out of rotation after repeated failures; try again in "+strconv.Itoa(secs)+"s")
}

// firstBytes waits for the first bytes of an answer's body.
func firstBytes(r io.Reader) ([]byte, error) {
	buf := make([]byte, 512)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			return buf[:n], nil
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
}

// attemptBody is the body of the answer an attempt relays: the first
// bytes already read, then the rest. The idle time-out runs while a read
// waits on the provider, not while the relay waits on a slow client; a
// read that an attempt time-out ended says which.
type attemptBody struct {
	first  []byte
	body   io.ReadCloser
	ctx    context.Context
	cancel context.CancelCauseFunc
	idle   time.Duration
	timer  *time.Timer
}

func (b *attemptBody) Read(p []byte) (int, error) {
	if len(b.first) > 0 {
		n := copy(p, b.first)
		b.first = b.first[n:]
		return n, nil
	}
	if b.idle > 0 {
		if b.timer == nil {
			b.timer = time.AfterFunc(b.idle, func() { b.cancel(errIdleTimeout) })
		} else {
			b.timer.Reset(b.idle)
		}
	}
	n, err := b.body.Read(p)
	if b.timer != nil {
		b.timer.Stop()
	}
	if err != nil && !errors.Is(err, io.EOF) {
		if cause := context.Cause(b.ctx); isAttemptTimeout(cause) {
			err = cause
		}
	}
	return n, err
}

func (b *attemptBody) Close() error {
	if b.timer != nil {
		b.timer.Stop()
	}
	return b.body.Close()
}

// TargetStatus is one routing target's state, for /readyz and the metrics.
type TargetStatus struct {
	Model         string `json:"-"`
	Provider      string `json:"provider"`
	UpstreamModel string `json:"upstream_model"`
	// State is closed (in rotation), open (cooling down) or half-open
	// (the next call probes it).
	State string `json:"state"`
	// CooldownLeft is how long an open target stays out.
	CooldownLeft time.Duration `json:"-"`
	// CooldownLeftMS is CooldownLeft in milliseconds, for /readyz.
	CooldownLeftMS int64 `json:"cooldown_left_ms,omitempty"`
	// Cooldowns counts the times it was taken out of rotation.
	Cooldowns uint64 `json:"cooldowns"`
	// InFlight are the calls on it now.
	InFlight int64 `json:"in_flight"`
}

// modelStatus is a model's route as /readyz shows it.
type modelStatus struct {
	Name     string         `json:"name"`
	Strategy string         `json:"strategy"`
	Targets  []TargetStatus `json:"targets"`
}

// Targets returns the state of every model's targets, in configuration
// order, for the metrics.
func (s *Server) Targets() []TargetStatus {
	var out []TargetStatus
	for _, m := range s.routeStatus() {
		out = append(out, m.Targets...)
	}
	return out
}

func (s *Server) routeStatus() []modelStatus {
	out := make([]modelStatus, 0, len(s.models))
	for _, name := range s.models {
		rtr := s.routes[name]
		ms := modelStatus{Name: name, Strategy: rtr.strategy, Targets: make([]TargetStatus, 0, len(rtr.targets))}
		for _, rt := range rtr.targets {
			state, left, cooldowns := rt.health.state()
			ms.Targets = append(ms.Targets, TargetStatus{
				Model: name, Provider: rt.provider.Name(), UpstreamModel: rt.upstreamModel,
				State: state, CooldownLeft: left, CooldownLeftMS: left.Milliseconds(), Cooldowns: cooldowns,
				InFlight: rt.inflight.Load(),
			})
		}
		out = append(out, ms)
	}
	return out
}
