package gemini

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"portcullis/adapters"
)

// Wire types of a GenerateContentRequest and of the content it shares
// with the response.
type (
	wireRequest struct {
		Contents          []wireContent     `json:"contents"`
		SystemInstruction *wireContent      `json:"systemInstruction,omitempty"`
		Tools             []wireTool        `json:"tools,omitempty"`
		ToolConfig        *wireToolConfig   `json:"toolConfig,omitempty"`
		GenerationConfig  *wireGenerationCf `json:"generationConfig,omitempty"`
	}
	wireContent struct {
		Role  string     `json:"role,omitempty"`
		Parts []wirePart `json:"parts"`
	}
	wirePart struct {
		Text             string                `json:"text,omitempty"`
		Thought          bool                  `json:"thought,omitempty"`
		InlineData       *wireBlob             `json:"inlineData,omitempty"`
		FunctionCall     *wireFunctionCall     `json:"functionCall,omitempty"`
		FunctionResponse *wireFunctionResponse `json:"functionResponse,omitempty"`
		ThoughtSignature string                `json:"thoughtSignature,omitempty"`
	}
	wireBlob struct {
		MimeType string `json:"mimeType"`
		Data     string `json:"data"`
	}
	wireFunctionCall struct {
		ID   string          `json:"id,omitempty"`
		Name string          `json:"name"`
		Args json.RawMessage `json:"args,omitempty"`
	}
	wireFunctionResponse struct {
		Name     string          `json:"name"`
		Response json.RawMessage `json:"response"`
	}
	wireTool struct {
		FunctionDeclarations []wireFunction `json:"functionDeclarations"`
	}
	wireFunction struct {
		Name                 string          `json:"name"`
		Description          string          `json:"description,omitempty"`
		ParametersJSONSchema json.RawMessage `json:"parametersJsonSchema,omitempty"`
	}
	wireToolConfig struct {
		FunctionCallingConfig wireCallingConfig `json:"functionCallingConfig"`
	}
	wireCallingConfig struct {
		Mode                 string   `json:"mode"`
		AllowedFunctionNames []string `json:"allowedFunctionNames,omitempty"`
	}
	wireGenerationCf struct {
		MaxOutputTokens    int             `json:"maxOutputTokens,omitempty"`
		Temperature        *float64        `json:"temperature,omitempty"`
		TopP               *float64        `json:"topP,omitempty"`
		TopK               *int            `json:"topK,omitempty"`
		StopSequences      []string        `json:"stopSequences,omitempty"`
		Seed               *int64          `json:"seed,omitempty"`
		PresencePenalty    *float64        `json:"presencePenalty,omitempty"`
		FrequencyPenalty   *float64        `json:"frequencyPenalty,omitempty"`
		ResponseMimeType   string          `json:"responseMimeType,omitempty"`
		ResponseJSONSchema json.RawMessage `json:"responseJsonSchema,omitempty"`
	}
)

// signatureMark separates a tool call's own id from the thoughtSignature
// the gateway carries in it. Neither a synthesized id (call_ and hex) nor
// a client's prefix (Anthropic's toolu_) holds it.
const signatureMark = "_sig_"

// callID is the id a client sees for a function call: its own id, and
// its thoughtSignature, if any, in base64url so that the id stays within
// [A-Za-z0-9_-] as Anthropic's SDKs expect.
func callID(id, signature string) string {
	if id == "" {
		id = adapters.NewCallID()
	}
	if signature == "" {
		return id
	}
	return id + signatureMark + base64.RawURLEncoding.EncodeToString([]byte(signature))
}

// signatureOf returns the thoughtSignature carried in a call id, if any.
func signatureOf(id string) string {
	_, enc, ok := strings.Cut(id, signatureMark)
	if !ok {
		return ""
	}
	sig, err := base64.RawURLEncoding.DecodeString(enc)
	if err != nil {
		return ""
	}
	return string(sig)
}

// EncodeRequest writes the unified request as a GenerateContentRequest
// for model (which goes in the URL, see Path). It refuses what Gemini
// cannot do without changing the request's meaning (several choices, image
// URLs, which Gemini does not fetch, a tool result for a call not in the
// conversation) and drops, into req.Dropped, what it can leave out
// harmlessly (logit bias, log probabilities, reasoning effort, user,
// parallel_tool_calls, strict schemas, image detail).
func EncodeRequest(req *adapters.Request, model string) ([]byte, error) {
	if req.N > 1 {
		return nil, &adapters.RequestError{Param: "n", Message: "n: the gateway translates one Gemini candidate; send n=1 or leave it out"}
	}
	drop := func(field string, present bool) {
		if present {
			req.Dropped = append(req.Dropped, field)
		}
	}
	drop("logit_bias", req.LogitBias != nil)
	drop("logprobs", req.Logprobs || req.TopLogprobs > 0)
	drop("reasoning_effort", req.ReasoningEffort != "")
	drop("user", req.User != "")
	drop("parallel_tool_calls", req.ParallelToolCalls != nil)

	w := wireRequest{}
	gc := wireGenerationCf{
		MaxOutputTokens:  req.MaxTokens,
		Temperature:      req.Temperature,
		TopP:             req.TopP,
		TopK:             req.TopK,
		StopSequences:    req.Stop,
		Seed:             req.Seed,
		PresencePenalty:  req.PresencePenalty,
		FrequencyPenalty: req.FrequencyPenalty,
	}
	if rf := req.ResponseFormat; rf != nil {
		switch rf.Type {
		case "json_object":
			gc.ResponseMimeType = "application/json"
		case "json_schema":
			gc.ResponseMimeType, gc.ResponseJSONSchema = "application/json", rf.Schema
		}
	}
	if b, _ := json.Marshal(gc); string(b) != "{}" {
		w.GenerationConfig = &gc
	}

	names := req.ToolNames()
	var system []wirePart
	for i, m := range req.Messages {
		param := fmt.Sprintf("messages[%d]", i)
		switch m.Role {
		case adapters.RoleSystem:
			for _, p := range m.Content {
				if p.Type != adapters.PartText {
					return nil, &adapters.RequestError{Param: param, Message: param + ": a system prompt for Gemini can hold only text"}
				}
				system = append(system, wirePart{Text: p.Text})
			}
		case adapters.RoleUser:
			parts, err := encodeParts(req, m.Content, param)
			if err != nil {
				return nil, err
			}
			w.Contents = appendContent(w.Contents, "user", parts, true)
		case adapters.RoleAssistant:
			parts, err := encodeParts(req, m.Content, param)
			if err != nil {
				return nil, err
			}
			for j, c := range m.ToolCalls {
				args, err := adapters.ArgumentsObject(c, fmt.Sprintf("%s.tool_calls[%d]", param, j))
				if err != nil {
					return nil, err
				}
				parts = append(parts, wirePart{FunctionCall: &wireFunctionCall{Name: c.Name, Args: args}, ThoughtSignature: signatureOf(c.ID)})
			}
			w.Contents = appendContent(w.Contents, "model", parts, false)
		case adapters.RoleTool:
			name, ok := names[m.ToolCallID]
			if !ok {
				return nil, &adapters.RequestError{Param: param + ".tool_call_id",
					Message: param + ".tool_call_id: Gemini needs the name of the tool whose result this is; send the assistant message that made call " + m.ToolCallID + " before it"}
			}
			resp, err := functionResponse(m, param)
			if err != nil {
				return nil, err
			}
			// Consecutive tool results answer one model turn: one user
			// content, which the user's words after them join too.
			w.Contents = appendContent(w.Contents, "user", []wirePart{{FunctionResponse: &wireFunctionResponse{Name: name, Response: resp}}}, true)
		default:
			return nil, &adapters.RequestError{Param: param + ".role", Message: fmt.Sprintf("%s.role: %q cannot be translated for Gemini", param, m.Role)}
		}
	}
	if len(system) > 0 {
		w.SystemInstruction = &wireContent{Parts: system}
	}
	if len(w.Contents) == 0 {
		return nil, &adapters.RequestError{Param: "messages", Message: "messages: Gemini needs at least one user or assistant message besides the system prompt"}
	}
	if len(req.Tools) > 0 {
		decls := make([]wireFunction, 0, len(req.Tools))
		for _, t := range req.Tools {
			drop("tools[].function.strict", t.Strict)
			schema := t.Parameters
			if string(schema) == "null" {
				schema = nil
			}
			decls = append(decls, wireFunction{Name: t.Name, Description: t.Description, ParametersJSONSchema: schema})
		}
		w.Tools = []wireTool{{FunctionDeclarations: decls}}
	}
	if cc := callingConfig(req); cc != nil {
		w.ToolConfig = &wireToolConfig{FunctionCallingConfig: *cc}
	}
	return json.Marshal(w)
}

// appendContent adds parts as a content of role, or to the last content
// when merge is set and that one is a tool-result turn of the same role,
// so that roles alternate as Gemini prefers.
func appendContent(contents []wireContent, role string, parts []wirePart, merge bool) []wireContent {
	if len(parts) == 0 {
		return contents // Gemini refuses contents without parts
	}
	if n := len(contents); merge && n > 0 && contents[n-1].Role == role && contents[n-1].Parts[0].FunctionResponse != nil {
		contents[n-1].Parts = append(contents[n-1].Parts, parts...)
		return contents
	}
	return append(contents, wireContent{Role: role, Parts: parts})
}

func encodeParts(req *adapters.Request, content []adapters.Part, param string) ([]wirePart, error) {
	parts := make([]wirePart, 0, len(content))
	for j, p := range content {
		switch p.Type {
		case adapters.PartText:
			if p.Text != "" {
				parts = append(parts, wirePart{Text: p.Text})
			}
		case adapters.PartImage:
			if p.Image.URL != "" {
				pp := fmt.Sprintf("%s.content[%d].image_url", param, j)
				return nil, &adapters.RequestError{Param: pp, Message: pp + ": Gemini does not fetch image URLs; send the image inline as a data: URL"}
			}
			if p.Image.Detail != "" && !slices.Contains(req.Dropped, "image_url.detail") {
				req.Dropped = append(req.Dropped, "image_url.detail")
			}
			parts = append(parts, wirePart{InlineData: &wireBlob{MimeType: p.Image.MediaType, Data: p.Image.Data}})
		default:
			return nil, &adapters.RequestError{Param: param, Message: param + ": this content cannot be sent to Gemini"}
		}
	}
	return parts, nil
}

// functionResponse is a tool result as Gemini wants it: an object. A
// result that is a JSON object goes as it is; any other text is wrapped,
// as {"result": ...}, or {"error": ...} for a failure.
func functionResponse(m adapters.Message, param string) (json.RawMessage, error) {
	for _, p := range m.Content {
		if p.Type != adapters.PartText {
			return nil, &adapters.RequestError{Param: param + ".content", Message: param + ".content: a tool result for Gemini can hold only text"}
		}
	}
	text := m.Text()
	if t := strings.TrimSpace(text); strings.HasPrefix(t, "{") && json.Valid([]byte(t)) {
		return json.RawMessage(t), nil
	}
	key := "result"
	if m.IsError {
		key = "error"
	}
	return json.Marshal(map[string]string{key: text})
}

func callingConfig(req *adapters.Request) *wireCallingConfig {
	switch req.ToolChoice.Mode {
	case adapters.ToolChoiceNone:
		return &wireCallingConfig{Mode: "NONE"}
	case adapters.ToolChoiceRequired:
		return &wireCallingConfig{Mode: "ANY"}
	case adapters.ToolChoiceTool:
		return &wireCallingConfig{Mode: "ANY", AllowedFunctionNames: []string{req.ToolChoice.Name}}
	case adapters.ToolChoiceAuto:
		if len(req.Tools) > 0 {
			return &wireCallingConfig{Mode: "AUTO"}
		}
	}
	return nil
}
