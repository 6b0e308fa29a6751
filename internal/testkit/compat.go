package testkit

import (
	"bytes"
	"embed"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

//go:embed testdata/azure-openai/* testdata/groq/* testdata/mistral/* testdata/perplexity/* testdata/ollama-openai/*
var compatFixtures embed.FS

// Compat is an OpenAI-compatible provider a CompatUpstream plays; its
// value is the testdata folder of the provider's wire reference.
type Compat string

// The OpenAI-compatible providers with a fake.
const (
	CompatAzure      Compat = "azure-openai"
	CompatGroq       Compat = "groq"
	CompatMistral    Compat = "mistral"
	CompatPerplexity Compat = "perplexity"
	// CompatOllama is Ollama's OpenAI-compatible /v1 API.
	CompatOllama Compat = "ollama-openai"
)

// CompatFixture returns a file of the provider's testdata folder, a
// byte-exact copy of its wire reference.
func CompatFixture(p Compat, name string) []byte {
	b, err := compatFixtures.ReadFile("testdata/" + string(p) + "/" + name)
	if err != nil {
		panic(err)
	}
	return b
}

// CompatFailure is a way a CompatUpstream fails, in its provider's words.
type CompatFailure string

// The failures every fake knows.
const (
	// CompatRateLimited is a 429 with the provider's body, and its
	// Retry-After where the provider sends one (CompatUpstream.RetryAfter).
	CompatRateLimited CompatFailure = "429"
	// CompatAuth is the provider's answer to a bad key.
	CompatAuth CompatFailure = "401"
	// CompatContextLength is the provider's answer to a prompt longer than
	// the model's context.
	CompatContextLength CompatFailure = "context_length"
	// CompatContentFilter is Azure's 400 for a prompt its content filter
	// blocked; only the Azure fake knows it.
	CompatContentFilter CompatFailure = "content_filter"
)

// CompatUpstream is a fake OpenAI-compatible provider that answers as its
// wire reference shows: on the provider's own paths (Azure's deployment
// URLs with api-version, Groq's /openai/v1, Perplexity's /chat/completions
// without /v1), checking its auth (Azure's api-key header, bearer keys
// elsewhere), with its fixtures (the tool call answer when the request
// offers tools, unless its last message is a tool result) and its stream
// quirks (Azure's filter-only first chunk, Groq's x_groq.usage, Mistral's
// usage on the finish chunk, Perplexity's missing [DONE]). It refuses what
// its provider refuses, so a test sees the gateway adapt the request:
// Mistral answers 422 to stream_options or max_completion_tokens and 400
// to tool-call ids that are not 9 letters and digits; Groq 400 to n > 1.
type CompatUpstream struct {
	*httptest.Server
	// Provider is the provider played.
	Provider Compat
	// Key is the key the upstream accepts; "" accepts any (a local Ollama).
	Key string

	mu       sync.Mutex
	received []Received
	fail     CompatFailure
	delay    time.Duration
}

// NewCompatUpstream starts a fake of provider p that accepts key; it is
// closed when the test ends.
func NewCompatUpstream(t testing.TB, p Compat, key string) *CompatUpstream {
	u := &CompatUpstream{Provider: p, Key: key}
	u.Server = httptest.NewServer(http.HandlerFunc(u.serve))
	t.Cleanup(u.Close)
	return u
}

// BaseURL is the base_url a gateway configures for the fake.
func (u *CompatUpstream) BaseURL() string {
	switch u.Provider {
	case CompatGroq:
		return u.URL + "/openai/v1"
	case CompatMistral, CompatOllama:
		return u.URL + "/v1"
	}
	return u.URL
}

// RetryAfter is the Retry-After the fake sends with its 429, "" for the
// providers that send none.
func (u *CompatUpstream) RetryAfter() string {
	switch u.Provider {
	case CompatAzure:
		return "6" // its message says "Please retry after 6 seconds"
	case CompatGroq:
		return "5" // its message says "Please try again in 4.765s"
	}
	return ""
}

// Fail makes every later answer fail in the given way; "" answers again.
func (u *CompatUpstream) Fail(f CompatFailure) {
	u.mu.Lock()
	u.fail = f
	u.mu.Unlock()
}

// SetEventDelay makes streams pause d between events, as a slow model does.
func (u *CompatUpstream) SetEventDelay(d time.Duration) {
	u.mu.Lock()
	u.delay = d
	u.mu.Unlock()
}

// Requests returns what the upstream received so far.
func (u *CompatUpstream) Requests() []Received {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]Received(nil), u.received...)
}

// LastBody is the body of the last request received, decoded.
func (u *CompatUpstream) LastBody(t testing.TB) map[string]any {
	t.Helper()
	reqs := u.Requests()
	if len(reqs) == 0 {
		t.Fatal("the upstream received no request")
	}
	var m map[string]any
	if err := json.Unmarshal(reqs[len(reqs)-1].Body, &m); err != nil {
		t.Fatalf("upstream request body: %v", err)
	}
	return m
}

var azurePath = regexp.MustCompile(`^/openai/deployments/[^/]+/(chat/completions|embeddings)$`)

// endpoint is "chat" or "embeddings" for the provider's own paths, "" for
// any other.
func (u *CompatUpstream) endpoint(r *http.Request) string {
	path := r.URL.Path
	if u.Provider == CompatAzure {
		m := azurePath.FindStringSubmatch(path)
		if m == nil || r.URL.Query().Get("api-version") == "" {
			return ""
		}
		path = "/" + m[1]
	} else {
		rest, ok := strings.CutPrefix(path, strings.TrimPrefix(u.BaseURL(), u.URL))
		if !ok {
			return ""
		}
		path = rest
	}
	switch {
	case path == "/chat/completions":
		return "chat"
	case path == "/embeddings" && u.Provider != CompatPerplexity:
		return "embeddings"
	}
	return ""
}

func (u *CompatUpstream) authorized(r *http.Request) bool {
	if u.Provider == CompatAzure {
		// Azure takes a key or an Entra token, never both.
		return r.Header.Get("Api-Key") == u.Key && r.Header.Get("Authorization") == ""
	}
	return u.Key == "" || r.Header.Get("Authorization") == "Bearer "+u.Key
}

func (u *CompatUpstream) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	u.mu.Lock()
	u.received = append(u.received, Received{Header: r.Header.Clone(), Body: body, Path: r.URL.RequestURI()})
	fail, delay := u.fail, u.delay
	u.mu.Unlock()

	endpoint := u.endpoint(r)
	switch {
	case r.Method != http.MethodPost || endpoint == "":
		u.answer(w, http.StatusNotFound, u.notFound())
		return
	case !u.authorized(r) || fail == CompatAuth:
		u.answer(w, http.StatusUnauthorized, u.unauthorized())
		return
	case fail == CompatRateLimited:
		if ra := u.RetryAfter(); ra != "" {
			w.Header().Set("Retry-After", ra)
			if u.Provider == CompatAzure {
				w.Header().Set("Retry-After-Ms", ra+"000")
			}
		}
		u.answer(w, http.StatusTooManyRequests, u.rateLimited())
		return
	case fail == CompatContextLength:
		u.answer(w, http.StatusBadRequest, u.contextLength())
		return
	case fail == CompatContentFilter && u.Provider == CompatAzure:
		u.answer(w, http.StatusBadRequest, CompatFixture(u.Provider, "error_400_content_filter.json"))
		return
	}
	if endpoint == "embeddings" {
		u.answer(w, http.StatusOK, CompatFixture(u.Provider, "embeddings_response.json"))
		return
	}
	var req struct {
		Stream        bool            `json:"stream"`
		StreamOptions json.RawMessage `json:"stream_options"`
		N             int             `json:"n"`
		Tools         []any           `json:"tools"`
		Messages      []struct {
			Role       string `json:"role"`
			ToolCallID string `json:"tool_call_id"`
			ToolCalls  []struct {
				ID string `json:"id"`
			} `json:"tool_calls"`
		} `json:"messages"`
	}
	var fields map[string]json.RawMessage
	if json.Unmarshal(body, &req) != nil || json.Unmarshal(body, &fields) != nil || len(req.Messages) == 0 {
		u.answer(w, http.StatusBadRequest, []byte(`{"error":{"message":"messages: field required","type":"invalid_request_error","param":"messages","code":null}}`))
		return
	}
	if status, refusal := u.refuse(fields, req.N, len(req.Tools) > 0); status != 0 {
		u.answer(w, status, refusal)
		return
	}
	if u.Provider == CompatMistral {
		for _, m := range req.Messages {
			ids := []string{m.ToolCallID}
			for _, c := range m.ToolCalls {
				ids = append(ids, c.ID)
			}
			for _, id := range ids {
				if id != "" && !mistralToolCallID.MatchString(id) {
					u.answer(w, http.StatusBadRequest, []byte(`{"object":"error","message":"Tool call id was `+id+` but must be a-z, A-Z, 0-9, with a length of 9.","type":"invalid_request_message_error","param":null,"code":"3280"}`))
					return
				}
			}
		}
	}
	prefix := "chat"
	if len(req.Tools) > 0 && req.Messages[len(req.Messages)-1].Role != "tool" {
		prefix = "tool_call"
	}
	if !req.Stream {
		u.answer(w, http.StatusOK, CompatFixture(u.Provider, prefix+"_response.json"))
		return
	}
	var opts struct {
		IncludeUsage bool `json:"include_usage"`
	}
	_ = json.Unmarshal(req.StreamOptions, &opts)
	u.stream(w, r, prefix, opts.IncludeUsage, delay)
}

var mistralToolCallID = regexp.MustCompile(`^[a-zA-Z0-9]{9}$`)

// refuse answers the request fields the provider rejects.
func (u *CompatUpstream) refuse(fields map[string]json.RawMessage, n int, tools bool) (int, []byte) {
	switch u.Provider {
	case CompatMistral:
		// Mistral rejects fields it does not know (anon-kode#53).
		for _, f := range []string{"stream_options", "max_completion_tokens", "seed"} {
			if _, ok := fields[f]; ok {
				return http.StatusUnprocessableEntity, []byte(`{"detail":[{"type":"extra_forbidden","loc":["body","` + f + `"],"msg":"Extra inputs are not permitted","input":null}]}`)
			}
		}
	case CompatGroq:
		if n > 1 {
			return http.StatusBadRequest, []byte(`{"error":{"message":"'n' : number must be at most 1","type":"invalid_request_error"}}`)
		}
	case CompatPerplexity:
		if tools {
			return http.StatusBadRequest, []byte(`{"error":{"message":"Tool calling is not supported for this model.","type":"invalid_request_error","code":400}}`)
		}
	}
	return 0, nil
}

// stream replays the provider's stream fixture. Azure and Ollama send the
// usage chunk only when asked, as OpenAI does; when asked and the fixture
// has none (Azure's tool call stream), it is made from the non-streamed
// answer's usage, as the provider would send it.
func (u *CompatUpstream) stream(w http.ResponseWriter, r *http.Request, prefix string, includeUsage bool, delay time.Duration) {
	events := bytes.SplitAfter(CompatFixture(u.Provider, prefix+"_stream.sse"), []byte("\n\n"))
	if u.Provider == CompatAzure || u.Provider == CompatOllama {
		kept := make([][]byte, 0, len(events)+1)
		hasUsage := false
		for _, ev := range events {
			if bytes.Contains(ev, []byte(`"choices":[],`)) && bytes.Contains(ev, []byte(`"usage":{`)) {
				hasUsage = true
				if !includeUsage {
					continue
				}
			}
			if includeUsage && !hasUsage && bytes.HasPrefix(ev, []byte("data: [DONE]")) {
				kept = append(kept, u.usageChunk(prefix, kept[len(kept)-1]))
			}
			kept = append(kept, ev)
		}
		events = kept
	}
	w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	for i, ev := range events {
		if len(ev) == 0 {
			continue
		}
		if i > 0 && delay > 0 {
			select {
			case <-time.After(delay):
			case <-r.Context().Done():
				return
			}
		}
		if _, err := w.Write(ev); err != nil {
			return
		}
		if err := rc.Flush(); err != nil {
			return
		}
	}
}

// usageChunk is the usage chunk of a stream whose last chunk was last:
// its id and model, the non-streamed answer's usage.
func (u *CompatUpstream) usageChunk(prefix string, last []byte) []byte {
	var chunk struct {
		ID      string `json:"id"`
		Model   string `json:"model"`
		Created int64  `json:"created"`
	}
	_ = json.Unmarshal(bytes.TrimPrefix(bytes.TrimSpace(last), []byte("data: ")), &chunk)
	var resp struct {
		Usage json.RawMessage `json:"usage"`
	}
	_ = json.Unmarshal(CompatFixture(u.Provider, prefix+"_response.json"), &resp)
	b, _ := json.Marshal(map[string]any{"choices": []any{}, "created": chunk.Created, "id": chunk.ID, "model": chunk.Model, "object": "chat.completion.chunk", "usage": resp.Usage})
	return append(append([]byte("data: "), b...), "\n\n"...)
}

func (u *CompatUpstream) answer(w http.ResponseWriter, status int, body []byte) {
	if bytes.HasPrefix(body, []byte("<")) {
		w.Header().Set("Content-Type", "text/html")
	} else {
		w.Header().Set("Content-Type", "application/json")
	}
	w.WriteHeader(status)
	w.Write(body)
}

// The error bodies below that are not files of the wire reference follow
// the shapes its READMEs describe; their texts are illustrative.

func (u *CompatUpstream) unauthorized() []byte {
	switch u.Provider {
	case CompatAzure, CompatGroq:
		return CompatFixture(u.Provider, "error_401.json")
	case CompatMistral:
		return []byte(`{"message":"Unauthorized","request_id":"5e1b3c9a74fa6d8b1c2a3f4e5d6c7b82"}`)
	case CompatPerplexity:
		// From the edge, as HTML.
		return []byte("<html>\r\n<head><title>401 Authorization Required</title></head>\r\n<body>\r\n<center><h1>401 Authorization Required</h1></center>\r\n<hr><center>openresty</center>\r\n</body>\r\n</html>\r\n")
	}
	return []byte(`{"error":"unauthorized"}`) // Ollama Cloud, native shape
}

func (u *CompatUpstream) rateLimited() []byte {
	if u.Provider == CompatOllama {
		return []byte(`{"error":"you have reached your hourly usage limit, please try again later"}`)
	}
	return CompatFixture(u.Provider, "error_429.json")
}

func (u *CompatUpstream) contextLength() []byte {
	switch u.Provider {
	case CompatAzure:
		return Fixture("error_400_context_length.json") // "the same as OpenAI"
	case CompatGroq:
		return []byte(`{"error":{"message":"Please reduce the length of the messages or completion.","type":"invalid_request_error","param":"messages"}}`)
	case CompatMistral:
		return []byte(`{"object":"error","message":"Prompt contains 140000 tokens and 0 draft tokens, too large for model with 131072 maximum context length","type":"invalid_request_message_error","param":null,"code":"3051"}`)
	case CompatPerplexity:
		return []byte(`{"error":{"message":"The prompt is 140000 tokens, more than the maximum context length of 127072 tokens for this model.","type":"invalid_request_error","code":400}}`)
	}
	return []byte(`{"error":{"message":"the input length exceeds the context length","type":"invalid_request_error","param":null,"code":null}}`)
}

func (u *CompatUpstream) notFound() []byte {
	switch u.Provider {
	case CompatAzure:
		return CompatFixture(u.Provider, "error_404_deployment.json")
	case CompatOllama:
		return CompatFixture(u.Provider, "error_404_model.json")
	}
	return []byte(`{"error":{"message":"Unknown request URL","type":"invalid_request_error","code":"unknown_url"}}`)
}
