package proxy

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"portcullis/authn"
	"portcullis/authz"
)

// A traced call is a server span named for its method and route, with a
// child span for each step it took: authenticate, authorize (the policy
// decision), upstream (one per attempt) and, for a stream, stream (the
// relay). When tracing is off the call has the no-op span, and no step
// starts a span, builds a name or sets an attribute: the request path
// pays a nil check. docs/operations.md#tracing lists the attributes.

// traceContext reads the W3C traceparent and tracestate headers.
var traceContext = propagation.TraceContext{}

// noSpan is the span of a call that is not traced.
var noSpan = trace.SpanFromContext(context.Background())

// Attribute keys, after OpenTelemetry's HTTP and GenAI conventions where
// those have one.
const (
	attrMethod         = attribute.Key("http.request.method")
	attrRoute          = attribute.Key("http.route")
	attrStatus         = attribute.Key("http.response.status_code")
	attrErrorType      = attribute.Key("error.type")
	attrRequestModel   = attribute.Key("gen_ai.request.model")
	attrResponseModel  = attribute.Key("gen_ai.response.model")
	attrInputTokens    = attribute.Key("gen_ai.usage.input_tokens")
	attrOutputTokens   = attribute.Key("gen_ai.usage.output_tokens")
	attrRequestID      = attribute.Key("portcullis.request_id")
	attrOutcome        = attribute.Key("portcullis.outcome")
	attrProvider       = attribute.Key("portcullis.provider")
	attrUpstreamModel  = attribute.Key("portcullis.upstream_model")
	attrStream         = attribute.Key("portcullis.stream")
	attrIdentityType   = attribute.Key("portcullis.identity.type")
	attrCredential     = attribute.Key("portcullis.credential")
	attrAuthnResult    = attribute.Key("portcullis.authn.result")
	attrDecision       = attribute.Key("portcullis.decision")
	attrReasons        = attribute.Key("portcullis.decision.reasons")
	attrRevision       = attribute.Key("portcullis.policy.revision")
	attrLogContent     = attribute.Key("portcullis.decision.log_content")
	attrTimeToFirstTok = attribute.Key("portcullis.ttft_ms")
	attrAttempt        = attribute.Key("portcullis.attempt")
)

// startTrace begins the call's server span, as a child of the caller's
// traceparent when it sent one, and puts the trace id in the record. With
// tracing off, a caller's trace id is still audited.
func (s *Server) startTrace(c *call) {
	c.span = noSpan
	r := c.r
	if s.tracer == nil {
		if len(r.Header["Traceparent"]) > 0 {
			sc := trace.SpanContextFromContext(traceContext.Extract(r.Context(), propagation.HeaderCarrier(r.Header)))
			if sc.IsValid() {
				c.rec.TraceID = sc.TraceID().String()
			}
		}
		return
	}
	ctx := traceContext.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
	ctx, c.span = s.tracer.Start(ctx, spanMethod(r.Method)+" "+r.Pattern, trace.WithSpanKind(trace.SpanKindServer))
	c.r = r.WithContext(ctx)
	c.rec.TraceID = c.span.SpanContext().TraceID().String()
}

// spanMethod is the method for a span name: one of HTTP's, or "HTTP" for
// anything else, so that a caller cannot mint span names.
func spanMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace:
		return m
	}
	return "HTTP"
}

// endTrace ends the server span with what the record says of the call.
func (s *Server) endTrace(c *call) {
	sp := c.span
	if !sp.IsRecording() {
		return
	}
	r := &c.rec
	sp.SetAttributes(
		attrMethod.String(r.Method),
		attrRoute.String(c.r.Pattern),
		attrStatus.Int(r.Status),
		attrRequestID.String(r.RequestID),
		attrOutcome.String(r.Outcome()),
	)
	if r.Model != "" {
		sp.SetAttributes(attrRequestModel.String(r.Model), attrStream.Bool(r.Stream))
	}
	if r.Provider != "" {
		sp.SetAttributes(attrProvider.String(r.Provider), attrUpstreamModel.String(r.UpstreamModel))
	}
	if r.ModelServed != "" {
		sp.SetAttributes(attrResponseModel.String(r.ModelServed))
	}
	if r.UsageReported {
		sp.SetAttributes(attrInputTokens.Int(r.PromptTokens), attrOutputTokens.Int(r.CompletionTokens))
	}
	if r.Decision.Evaluated {
		sp.SetAttributes(attrDecision.String(decisionWord(r.Decision.Allow, r.ErrorClass == "policy_error")))
	}
	if r.ErrorClass != "" {
		sp.SetAttributes(attrErrorType.String(r.ErrorClass))
	}
	if r.Outcome() == "failed" {
		sp.SetStatus(codes.Error, r.ErrorClass)
	}
	sp.End()
}

// startSpan begins a step's span under the call's; the no-op span when
// the call is not traced (tracing off, or not sampled).
func (s *Server) startSpan(c *call, name string, kind trace.SpanKind) trace.Span {
	if !c.span.IsRecording() {
		return noSpan
	}
	_, sp := s.tracer.Start(c.r.Context(), name, trace.WithSpanKind(kind))
	return sp
}

func endAuthnSpan(sp trace.Span, id *authn.Identity, err error) {
	if !sp.IsRecording() {
		return
	}
	switch {
	case err == nil:
		sp.SetAttributes(attrAuthnResult.String("ok"), attrIdentityType.String(string(id.Type)), attrCredential.String(id.Credential))
	case errors.Is(err, authn.ErrNoCredential):
		sp.SetAttributes(attrAuthnResult.String("no_credential"))
	default:
		sp.SetAttributes(attrAuthnResult.String("refused"))
	}
	sp.End()
}

func endAuthzSpan(sp trace.Span, d *authz.Decision, err error) {
	if !sp.IsRecording() {
		return
	}
	sp.SetAttributes(
		attrDecision.String(decisionWord(d.Allow, err != nil)),
		attrRevision.String(d.Revision),
		attrLogContent.Bool(d.LogContent),
	)
	if len(d.Reasons) > 0 {
		sp.SetAttributes(attrReasons.StringSlice(d.Reasons))
	}
	if err != nil {
		sp.SetStatus(codes.Error, "policy error")
	}
	sp.End()
}

// decisionWord is the decision as a span attribute: allow, deny, or error
// (a deny because the policy could not decide).
func decisionWord(allow, failed bool) string {
	switch {
	case failed:
		return "error"
	case allow:
		return "allow"
	}
	return "deny"
}

// endAttemptSpan ends an upstream attempt's span: once the provider's
// first byte arrived, or the attempt failed (class says how).
func endAttemptSpan(sp trace.Span, rt *route, n, status int, class string) {
	if !sp.IsRecording() {
		return
	}
	sp.SetAttributes(attrProvider.String(rt.provider.Name()), attrRequestModel.String(rt.upstreamModel), attrAttempt.Int(n))
	if status != 0 {
		sp.SetAttributes(attrStatus.Int(status))
	}
	if class != "" {
		sp.SetAttributes(attrErrorType.String(class))
		sp.SetStatus(codes.Error, class)
	}
	sp.End()
}

// endStreamSpan ends the relay's span with how the stream ended.
func endStreamSpan(sp trace.Span, c *call) {
	if !sp.IsRecording() {
		return
	}
	r := &c.rec
	if r.TimeToFirstToken > 0 {
		sp.SetAttributes(attrTimeToFirstTok.Float64(float64(r.TimeToFirstToken.Microseconds()) / 1000))
	}
	if r.UsageReported {
		sp.SetAttributes(attrOutputTokens.Int(r.CompletionTokens))
	}
	if r.ErrorClass != "" {
		sp.SetAttributes(attrErrorType.String(r.ErrorClass))
		if strings.HasPrefix(r.ErrorClass, "upstream_") {
			sp.SetStatus(codes.Error, r.ErrorClass)
		}
	}
	sp.End()
}
