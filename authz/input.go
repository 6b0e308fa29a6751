package authz

import (
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
	// Models are the model names configured on the gateway, given to the
	// models rule as input.models; nil for a decision.
	Models []string
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
	// UsageScope is whose usage a report (GET /v1/usage/report) asks
	// for beyond the caller's own, as input.request.usage_scope: nil
	// otherwise, and then absent from the input.
	UsageScope *UsageScope
}

// UsageScope is the scope of a usage report: a subject, a group, or
// everyone (both empty).
type UsageScope struct {
	Subject, Group string
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
	keyModels               = ast.StringTerm("models")
	keyUsageScope           = ast.StringTerm("usage_scope")
	keyGroup                = ast.StringTerm("group")
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
	if sc := r.UsageScope; sc != nil {
		request.Insert(keyUsageScope, ast.NewTerm(ast.NewObject(
			ast.Item(keySubject, ast.StringTerm(sc.Subject)),
			ast.Item(keyGroup, ast.StringTerm(sc.Group)),
		)))
	}
	now := in.Time.UTC()
	tm := ast.NewObject(
		ast.Item(keyNow, ast.StringTerm(now.Format(time.RFC3339))),
		ast.Item(keyUnix, ast.IntNumberTerm(int(now.Unix()))),
	)
	doc := ast.NewObject(
		ast.Item(keyIdentity, ast.NewTerm(identity)),
		ast.Item(keyRequest, ast.NewTerm(request)),
		ast.Item(keyTime, ast.NewTerm(tm)),
	)
	if in.Models != nil {
		doc.Insert(keyModels, stringsTerm(in.Models))
	}
	return doc
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
