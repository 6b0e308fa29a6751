package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"portcullis/adapters"
	"portcullis/adapters/anthropic"
	"portcullis/adapters/bedrock"
	"portcullis/adapters/cohere"
	"portcullis/adapters/demo"
	"portcullis/adapters/gemini"
	"portcullis/adapters/ollama"
	"portcullis/adapters/openai"
	"portcullis/audit"
	"portcullis/authn"
	"portcullis/authz"
	"portcullis/config"
)

// providerStatus is a provider as /readyz reports it.
type providerStatus struct {
	Name    string `json:"name"`
	Type    string `json:"type"`
	Enabled bool   `json:"enabled"`
	Reason  string `json:"reason,omitempty"`
}

// demoBaseURL is where the demo provider pretends to live; requests to it
// never leave the process.
const demoBaseURL = "http://demo.portcullis.invalid/v1"

// buildRoutes makes one provider per configured provider and maps every
// model name to its provider. A provider whose key is empty is disabled
// with one warning, and so are its models.
func (s *Server) buildRoutes() error {
	providers := map[string]adapters.Provider{}
	for i, pc := range s.cfg.Providers {
		if off, why := s.cfg.ProviderDisabled(i); off {
			s.log.Warn("provider disabled: its API key is empty", zap.String("provider", pc.Name), zap.String("reason", why))
			s.statuses = append(s.statuses, providerStatus{Name: pc.Name, Type: pc.Type, Reason: why})
			continue
		}
		p, err := newProvider(pc, s.version)
		if err != nil {
			return err
		}
		providers[pc.Name] = p
		s.statuses = append(s.statuses, providerStatus{Name: pc.Name, Type: pc.Type, Enabled: true})
		s.log.Info("provider ready", zap.String("provider", pc.Name), zap.String("type", pc.Type))
	}
	s.routes = make(map[string]*router, len(s.cfg.Models))
	s.disabled = map[string]string{}
	for _, m := range s.cfg.Models {
		rtr, off := s.newRouter(m, providers)
		if len(rtr.targets) == 0 {
			s.disabled[m.Name] = disabledReason(off)
			continue
		}
		if len(off) > 0 {
			s.log.Warn("model routed without its targets on disabled providers", zap.String("model", m.Name), zap.Strings("providers", off))
		}
		s.routes[m.Name] = rtr
		s.models = append(s.models, m.Name)
	}
	for _, m := range s.cfg.Models {
		if rtr, ok := s.routes[m.Name]; ok && m.ContextFallback != "" {
			rtr.contextFallback = s.routes[m.ContextFallback] // nil when that model is disabled
		}
	}
	if len(s.routes) == 0 {
		s.log.Warn("no model is available: every provider is disabled or no model is configured")
	}
	return nil
}

// disabledReason says why a model whose every provider is off cannot be used.
func disabledReason(providers []string) string {
	if len(providers) == 1 {
		return "its provider " + providers[0] + " is disabled on this gateway (no API key is configured)"
	}
	return "its providers " + strings.Join(providers, ", ") + " are disabled on this gateway (no API key is configured)"
}

func newProvider(pc config.Provider, version string) (adapters.Provider, error) {
	ua := "portcullis/" + version
	switch pc.Type {
	case "demo":
		return openai.New(openai.Options{
			Name:      pc.Name,
			BaseURL:   demoBaseURL,
			Transport: &demo.Transport{Handler: &demo.Handler{WordDelay: pc.WordDelay.Std()}},
			UserAgent: ua,
		}), nil
	case "openai", "azure", "groq", "mistral", "perplexity", "ollama-openai", "vllm":
		return openai.New(openai.Options{
			Name:       pc.Name,
			BaseURL:    pc.BaseURL,
			APIKey:     pc.APIKey.Reveal(),
			Headers:    revealHeaders(pc.Headers),
			UserAgent:  ua,
			Dialect:    openai.Dialect(pc.Type),
			APIVersion: pc.APIVersion,
		}), nil
	case "anthropic":
		return anthropic.New(anthropic.Options{
			Name:      pc.Name,
			BaseURL:   pc.BaseURL,
			APIKey:    pc.APIKey.Reveal(),
			Headers:   revealHeaders(pc.Headers),
			UserAgent: ua,
		}), nil
	case "gemini":
		return gemini.New(nativeOptions(pc, ua)), nil
	case "cohere":
		return cohere.New(nativeOptions(pc, ua)), nil
	case "ollama":
		return ollama.New(nativeOptions(pc, ua)), nil
	case "bedrock":
		return bedrock.New(nativeOptions(pc, ua)), nil
	default:
		return nil, fmt.Errorf("provider %s: unknown type %q", pc.Name, pc.Type)
	}
}

// nativeOptions are the options of a native-format provider.
func nativeOptions(pc config.Provider, ua string) adapters.ProviderOptions {
	return adapters.ProviderOptions{
		Name:      pc.Name,
		BaseURL:   pc.BaseURL,
		APIKey:    pc.APIKey.Reveal(),
		Headers:   revealHeaders(pc.Headers),
		UserAgent: ua,
	}
}

// revealHeaders gives a provider its configured headers' values, which
// the configuration keeps as secrets.
func revealHeaders(h map[string]config.Secret) map[string]string {
	out := make(map[string]string, len(h))
	for k, v := range h {
		out[k] = v.Reveal()
	}
	return out
}

// listModels serves GET /v1/models: the models this gateway can serve.
func (s *Server) listModels(c *call) {
	id, ok := s.authenticate(c)
	if !ok {
		return
	}
	began := time.Now()
	visible, err := s.visibleModels(c.r.Context(), id, c.rec.ClientIP, c.rec.UserAgent, c.start)
	c.rec.PolicyLatency = time.Since(began)
	c.rec.Decision = audit.Decision{Evaluated: true, Allow: err == nil, Revision: s.policy.Revision()}
	if err != nil {
		// Fail closed: a broken models rule shows nothing.
		c.logger().Error("policy could not list models; showing none", zap.Error(err))
		c.rec.ErrorClass, c.rec.Error = "policy_error", err.Error()
		c.rec.Decision.Reasons = []string{"denied: " + err.Error()}
		visible = nil
	}
	type model struct {
		ID      string `json:"id"`
		Object  string `json:"object"`
		Created int64  `json:"created"`
		OwnedBy string `json:"owned_by"`
	}
	list := struct {
		Object string  `json:"object"`
		Data   []model `json:"data"`
	}{Object: "list", Data: make([]model, 0, len(visible))}
	for _, name := range visible {
		list.Data = append(list.Data, model{ID: name, Object: "model", Created: s.started.Unix(), OwnedBy: s.routes[name].targets[0].provider.Name()})
	}
	writeJSON(c.w, http.StatusOK, list)
}

// visibleModels asks the policy which of the gateway's models id may use.
func (s *Server) visibleModels(ctx context.Context, id *authn.Identity, clientIP, userAgent string, now time.Time) ([]string, error) {
	return s.policy.Models(ctx, &authz.Input{
		Identity: id,
		Request:  authz.Request{API: "models", ClientIP: clientIP, UserAgent: userAgent},
		Time:     now,
	}, s.models)
}

// readyz says whether the gateway can serve: configuration, policy and
// providers loaded, and not shutting down; its routes say which targets
// are cooling down and how busy each is.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	status, code := "ready", http.StatusOK
	if !s.ready.Load() {
		status, code = "not ready", http.StatusServiceUnavailable
	}
	policy := s.policy.Status()
	writeJSON(w, code, struct {
		Status         string           `json:"status"`
		PolicyRevision string           `json:"policy_revision"`
		Policy         authz.Status     `json:"policy"`
		Providers      []providerStatus `json:"providers"`
		Models         int              `json:"models"`
		Routes         []modelStatus    `json:"routes"`
	}{status, policy.Revision, policy, s.statuses, len(s.models), s.routeStatus()})
}

// marshalJSON encodes v as one line, leaving <, > and & readable: the
// bodies are JSON for API clients, never HTML.
func marshalJSON(v any) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
	return b.Bytes()
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body := marshalJSON(v)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	w.Write(body)
}
