package authz

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"portcullis/authn"
)

// Input is what the policy sees as `input`: who is calling, what they ask
// for, and when. It never holds message content.
type Input struct {
	Identity *authn.Identity
	Request  Request
	Time     time.Time
}

// Request describes the call being decided, as input.request.
type Request struct {
	// API is the inbound API: chat, messages, embeddings or models.
	API    string
	Model  string
	Stream bool
	// MaxTokens is the output cap the client asked for; 0 when it set none.
	MaxTokens            int
	EstimatedInputTokens int
	// Tools are the names of the function tools offered to the model.
	Tools      []string
	ToolChoice string
	Modalities []string
	ClientIP   string
	UserAgent  string
}

// Decision is the policy's answer, decoded from data.portcullis.decision.
type Decision struct {
	Allow   bool
	Reasons []string
	// MaxTokens caps the request's output tokens; 0 means no cap.
	MaxTokens int
	// LogContent lets prompts and completions into the audit record.
	LogContent bool
	// Revision is the policy revision that decided.
	Revision string
}

// Keys of the input document, built once: terms are immutable once made.
var (
	keyType                 = ast.StringTerm("type")
	keySubject              = ast.StringTerm("subject")
	keyEmail                = ast.StringTerm("email")
	keyName                 = ast.StringTerm("name")
	keyGroups               = ast.StringTerm("groups")
	keyRoles                = ast.StringTerm("roles")
	keyIssuer               = ast.StringTerm("issuer")
	keyClaims               = ast.StringTerm("claims")
	keyApi                  = ast.StringTerm("api")
	keyModel                = ast.StringTerm("model")
	keyStream               = ast.StringTerm("stream")
	keyMaxTokens            = ast.StringTerm("max_tokens")
	keyEstimatedInputTokens = ast.StringTerm("estimated_input_tokens")
	keyTools                = ast.StringTerm("tools")
	keyToolChoice           = ast.StringTerm("tool_choice")
	keyModalities           = ast.StringTerm("modalities")
	keyClientIp             = ast.StringTerm("client_ip")
	keyUserAgent            = ast.StringTerm("user_agent")
	keyNow                  = ast.StringTerm("now")
	keyUnix                 = ast.StringTerm("unix")
	keyIdentity             = ast.StringTerm("identity")
	keyRequest              = ast.StringTerm("request")
	keyTime                 = ast.StringTerm("time")
)

// value builds the input document directly as an OPA value, so a decision
// costs no JSON round trip or reflection over the input.
func (in *Input) value() ast.Value {
	id := in.Identity
	if id == nil {
		id = &authn.Identity{}
	}
	identity := ast.NewObject(
		ast.Item(keyType, ast.StringTerm(string(id.Type))),
		ast.Item(keySubject, ast.StringTerm(id.Subject)),
		ast.Item(keyEmail, ast.StringTerm(id.Email)),
		ast.Item(keyName, ast.StringTerm(id.Name)),
		ast.Item(keyGroups, stringsTerm(id.Groups)),
		ast.Item(keyRoles, stringsTerm(id.Roles)),
		ast.Item(keyIssuer, ast.StringTerm(id.Issuer)),
		ast.Item(keyClaims, claimsTerm(id.Claims)),
	)
	r := &in.Request
	request := ast.NewObject(
		ast.Item(keyApi, ast.StringTerm(r.API)),
		ast.Item(keyModel, ast.StringTerm(r.Model)),
		ast.Item(keyStream, ast.BooleanTerm(r.Stream)),
		ast.Item(keyMaxTokens, ast.IntNumberTerm(r.MaxTokens)),
		ast.Item(keyEstimatedInputTokens, ast.IntNumberTerm(r.EstimatedInputTokens)),
		ast.Item(keyTools, stringsTerm(r.Tools)),
		ast.Item(keyToolChoice, ast.StringTerm(r.ToolChoice)),
		ast.Item(keyModalities, stringsTerm(r.Modalities)),
		ast.Item(keyClientIp, ast.StringTerm(r.ClientIP)),
		ast.Item(keyUserAgent, ast.StringTerm(r.UserAgent)),
	)
	now := in.Time.UTC()
	tm := ast.NewObject(
		ast.Item(keyNow, ast.StringTerm(now.Format(time.RFC3339))),
		ast.Item(keyUnix, ast.IntNumberTerm(int(now.Unix()))),
	)
	return ast.NewObject(
		ast.Item(keyIdentity, ast.NewTerm(identity)),
		ast.Item(keyRequest, ast.NewTerm(request)),
		ast.Item(keyTime, ast.NewTerm(tm)),
	)
}

func stringsTerm(ss []string) *ast.Term {
	terms := make([]*ast.Term, len(ss))
	for i, s := range ss {
		terms[i] = ast.StringTerm(s)
	}
	return ast.ArrayTerm(terms...)
}

func claimsTerm(claims map[string]any) *ast.Term {
	if len(claims) == 0 {
		return ast.ObjectTerm()
	}
	v, err := ast.InterfaceToValue(claims)
	if err != nil {
		return ast.ObjectTerm()
	}
	return ast.NewTerm(v)
}

// decodeDecision checks the shape of the policy's result field by field; a
// missing allow, a field of the wrong type or an unknown field is an error,
// so a typo in a policy cannot quietly grant access.
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
		switch k {
		case "allow":
		case "reasons":
			list, ok := val.([]any)
			if !ok {
				return Decision{}, fmt.Errorf("decision.reasons is %s, want a list of strings", describe(val))
			}
			for _, item := range list {
				s, ok := item.(string)
				if !ok {
					return Decision{}, fmt.Errorf("decision.reasons holds %s, want strings", describe(item))
				}
				d.Reasons = append(d.Reasons, s)
			}
		case "max_tokens":
			n, ok := val.(json.Number)
			i, err := n.Int64()
			if !ok || err != nil || i < 0 {
				return Decision{}, fmt.Errorf("decision.max_tokens is %s, want a whole number of tokens", describe(val))
			}
			d.MaxTokens = int(i)
		case "log_content":
			b, ok := val.(bool)
			if !ok {
				return Decision{}, fmt.Errorf("decision.log_content is %s, want true or false", describe(val))
			}
			d.LogContent = b
		case "budgets", "rate_limits", "tools":
			// Enforced by later parts of the gateway; accepted here so
			// policies can already state them.
		default:
			return Decision{}, fmt.Errorf("decision has unknown field %q; known fields are allow, reasons, max_tokens, budgets, rate_limits, tools, log_content", k)
		}
	}
	return d, nil
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
