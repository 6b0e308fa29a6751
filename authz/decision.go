package authz

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Decision is the policy's answer, decoded from data.portcullis.decision.
// Its zero value denies.
type Decision struct {
	Allow   bool
	Reasons []string
	// MaxTokens caps the request's output tokens; 0 means no cap.
	MaxTokens int
	// Budgets are the spending limits this call counts against.
	Budgets []Budget
	// RateLimits bound how fast the caller may call.
	RateLimits RateLimits
	// Tools says which function tools the call may offer the model.
	Tools Tools
	// LogContent lets prompts and completions into the audit record.
	LogContent bool
	// Revision is the policy revision that decided.
	Revision string
}

// Budget is one spending limit: everything sharing Key counts against it
// within Window. At least one of Tokens and USD is set.
type Budget struct {
	// Key names who shares the budget, such as "user:alice" or "group:ml".
	Key string
	// Window is "minute", "hour", "day", "week" or "month" (calendar
	// periods), or "rolling:<duration>" such as "rolling:24h".
	Window string
	// Tokens is the limit in tokens; 0 when the budget is in dollars only.
	Tokens int64
	// USD is the limit in US dollars; 0 when the budget is in tokens only.
	USD float64
	// OnStoreError is "fail-closed" or "local": what a call counted
	// against the budget does when the usage store cannot be reached.
	// Empty: the configuration's usage.on_store_error.
	OnStoreError string
}

// RateLimits bound the caller's pace; 0 means no limit.
type RateLimits struct {
	RequestsPerMinute int
	TokensPerMinute   int
}

// Tool violation behaviours.
const (
	// ToolsDeny refuses a call that offers a tool outside the allowed list.
	ToolsDeny = "deny"
	// ToolsStrip removes such tools from the call and lets it through.
	ToolsStrip = "strip"
)

// Tools is the decision's rule for function tools.
type Tools struct {
	// Restricted is false when any tool is allowed (no tools field, or
	// allowed: "*").
	Restricted bool
	// Allowed lists the tool names allowed when Restricted.
	Allowed []string
	// OnViolation is ToolsDeny or ToolsStrip.
	OnViolation string
}

// Permits reports whether the tool name is allowed.
func (t Tools) Permits(name string) bool {
	if !t.Restricted {
		return true
	}
	for _, a := range t.Allowed {
		if a == name {
			return true
		}
	}
	return false
}

// decisionFields are the fields a decision may have, for error messages.
const decisionFields = "allow, reasons, max_tokens, budgets, rate_limits, tools, log_content"

// decodeDecision checks the shape of the policy's result field by field; a
// missing allow, a field of the wrong type or an unknown field is an error,
// so a typo in a policy cannot quietly grant access or lift a limit.
func decodeDecision(v any) (Decision, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return Decision{}, fmt.Errorf("decision is %T, want an object such as {\"allow\": true}", v)
	}
	var d Decision
	allow, ok := m["allow"].(bool)
	if !ok {
		return Decision{}, fmt.Errorf("decision.allow is %s, want true or false", describe(m["allow"]))
	}
	d.Allow = allow
	for k, val := range m {
		var err error
		switch k {
		case "allow":
		case "reasons":
			d.Reasons, err = decodeStrings("decision.reasons", val)
		case "max_tokens":
			var n int64
			n, err = decodeCount("decision.max_tokens", val, "a whole number of tokens")
			d.MaxTokens = int(n)
		case "log_content":
			var isBool bool
			if d.LogContent, isBool = val.(bool); !isBool {
				err = fmt.Errorf("decision.log_content is %s, want true or false", describe(val))
			}
		case "budgets":
			d.Budgets, err = decodeBudgets(val)
		case "rate_limits":
			d.RateLimits, err = decodeRateLimits(val)
		case "tools":
			d.Tools, err = decodeTools(val)
		default:
			err = fmt.Errorf("decision has unknown field %q; known fields are %s", k, decisionFields)
		}
		if err != nil {
			return Decision{}, err
		}
	}
	return d, nil
}

func decodeStrings(path string, v any) ([]string, error) {
	list, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("%s is %s, want a list of strings", path, describe(v))
	}
	out := make([]string, 0, len(list))
	for _, item := range list {
		s, ok := item.(string)
		if !ok {
			return nil, fmt.Errorf("%s holds %s, want strings", path, describe(item))
		}
		out = append(out, s)
	}
	return out, nil
}

// decodeCount reads a non-negative whole number.
func decodeCount(path string, v any, want string) (int64, error) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, fmt.Errorf("%s is %s, want %s", path, describe(v), want)
	}
	i, err := n.Int64()
	if err != nil || i < 0 {
		return 0, fmt.Errorf("%s is %s, want %s", path, describe(v), want)
	}
	return i, nil
}

func decodeBudgets(v any) ([]Budget, error) {
	list, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("decision.budgets is %s, want a list of {key, window, tokens?, usd?}", describe(v))
	}
	out := make([]Budget, 0, len(list))
	for i, item := range list {
		path := fmt.Sprintf("decision.budgets[%d]", i)
		m, ok := item.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%s is %s, want an object {key, window, tokens?, usd?}", path, describe(item))
		}
		var b Budget
		for k, val := range m {
			var err error
			switch k {
			case "key":
				b.Key, err = decodeString(path+".key", val)
			case "window":
				if b.Window, err = decodeString(path+".window", val); err == nil {
					err = checkWindow(path+".window", b.Window)
				}
			case "tokens":
				b.Tokens, err = decodeCount(path+".tokens", val, "a whole number of tokens")
			case "usd":
				b.USD, err = decodeUSD(path+".usd", val)
			case "on_store_error":
				if b.OnStoreError, err = decodeString(path+".on_store_error", val); err == nil && b.OnStoreError != "fail-closed" && b.OnStoreError != "local" {
					err = fmt.Errorf("%s.on_store_error is %q, want \"fail-closed\" or \"local\"", path, b.OnStoreError)
				}
			default:
				err = fmt.Errorf("%s has unknown field %q; known fields are key, window, tokens, usd, on_store_error", path, k)
			}
			if err != nil {
				return nil, err
			}
		}
		switch {
		case b.Key == "":
			return nil, fmt.Errorf("%s.key is missing; name who shares the budget, such as \"user:alice\"", path)
		case b.Window == "":
			return nil, fmt.Errorf("%s.window is missing; use minute, hour, day, week, month or rolling:<duration>", path)
		case b.Tokens == 0 && b.USD == 0:
			return nil, fmt.Errorf("%s sets neither tokens nor usd; a budget needs a limit", path)
		}
		out = append(out, b)
	}
	return out, nil
}

func decodeString(path string, v any) (string, error) {
	s, ok := v.(string)
	if !ok || s == "" {
		return "", fmt.Errorf("%s is %s, want a non-empty string", path, describe(v))
	}
	return s, nil
}

func decodeUSD(path string, v any) (float64, error) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, fmt.Errorf("%s is %s, want an amount in dollars", path, describe(v))
	}
	f, err := n.Float64()
	if err != nil || f < 0 {
		return 0, fmt.Errorf("%s is %s, want an amount in dollars", path, describe(v))
	}
	return f, nil
}

func checkWindow(path, w string) error {
	switch w {
	case "minute", "hour", "day", "week", "month":
		return nil
	}
	if d, ok := strings.CutPrefix(w, "rolling:"); ok {
		if dur, err := time.ParseDuration(d); err == nil && dur > 0 {
			return nil
		}
	}
	return fmt.Errorf("%s is %q; use minute, hour, day, week, month or rolling:<duration> such as rolling:24h", path, w)
}

func decodeRateLimits(v any) (RateLimits, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return RateLimits{}, fmt.Errorf("decision.rate_limits is %s, want {requests_per_minute?, tokens_per_minute?}", describe(v))
	}
	var r RateLimits
	for k, val := range m {
		n, err := decodeCount("decision.rate_limits."+k, val, "a whole number per minute")
		switch k {
		case "requests_per_minute":
			r.RequestsPerMinute = int(n)
		case "tokens_per_minute":
			r.TokensPerMinute = int(n)
		default:
			err = fmt.Errorf("decision.rate_limits has unknown field %q; known fields are requests_per_minute, tokens_per_minute", k)
		}
		if err != nil {
			return RateLimits{}, err
		}
	}
	return r, nil
}

func decodeTools(v any) (Tools, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return Tools{}, fmt.Errorf("decision.tools is %s, want {allowed: [names] or \"*\", on_violation: \"deny\" or \"strip\"}", describe(v))
	}
	t := Tools{OnViolation: ToolsDeny}
	for k, val := range m {
		switch k {
		case "allowed":
			if s, ok := val.(string); ok && s == "*" {
				continue
			}
			names, err := decodeStrings("decision.tools.allowed", val)
			if err != nil {
				return Tools{}, fmt.Errorf("decision.tools.allowed is %s, want a list of tool names or \"*\"", describe(val))
			}
			t.Restricted, t.Allowed = true, names
		case "on_violation":
			s, _ := val.(string)
			if s != ToolsDeny && s != ToolsStrip {
				return Tools{}, fmt.Errorf("decision.tools.on_violation is %s, want \"deny\" or \"strip\"", describe(val))
			}
			t.OnViolation = s
		default:
			return Tools{}, fmt.Errorf("decision.tools has unknown field %q; known fields are allowed, on_violation", k)
		}
	}
	if _, ok := m["allowed"]; !ok {
		return Tools{}, fmt.Errorf("decision.tools.allowed is missing; list the tool names, or write \"*\" for any")
	}
	return t, nil
}

func describe(v any) string {
	switch v := v.(type) {
	case nil:
		return "missing"
	case string:
		return fmt.Sprintf("the string %q", v)
	case json.Number:
		return "the number " + v.String()
	default:
		return fmt.Sprintf("a %T", v)
	}
}
