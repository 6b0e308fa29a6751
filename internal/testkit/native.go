package testkit

import (
	"bytes"
	"embed"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"portcullis/adapters"
)

//go:embed testdata/gemini/* testdata/cohere/* testdata/ollama/* testdata/bedrock/*
var nativeFixtures embed.FS

// ProviderFixture returns a file of testdata/<provider> (gemini, cohere,
// ollama, bedrock), a byte-exact copy of that provider's wire reference.
func ProviderFixture(provider, name string) []byte {
	b, err := nativeFixtures.ReadFile("testdata/" + provider + "/" + name)
	if err != nil {
		panic(err)
	}
	return b
}

// Failure is a way a fake native-format upstream fails, each answered as
// that provider answers it.
type Failure string

// The failures every fake provider can show.
const (
	// FailRateLimit is the provider's 429.
	FailRateLimit Failure = "429"
	// FailAuth is the provider refusing the key, however it says so
	// (Gemini: a 400 API_KEY_INVALID).
	FailAuth Failure = "auth"
	// FailContextLength is the provider's "the prompt is too long".
	FailContextLength Failure = "context"
	// FailMidstream is a stream that starts, then fails as the provider
	// reports an error inside a stream (a streamed call only).
	FailMidstream Failure = "midstream"
)

// answer is a fixed HTTP answer.
type answer struct {
	status int
	header http.Header
	body   []byte
}

// dialect is what sets one provider's fake apart: where it listens, how
// it checks the key, how it reads a request, how it frames a stream, and
// how it fails.
type dialect struct {
	provider string
	// route reads the URL: whether it is the chat endpoint, and whether
	// the method asks for a stream (for providers that stream by URL).
	route func(r *http.Request) (chat, stream bool)
	// authorized checks the request's key.
	authorized func(r *http.Request, key string) bool
	// read returns whether the request asks for a stream (streamed is
	// what the URL said) and whether it is a turn that offers tools and
	// does not bring a tool's result back.
	read     func(body []byte, streamed bool) (stream, toolTurn bool, err error)
	notFound answer
	bad      answer
	failures map[Failure]answer
	// streamType, streamExt and split frame a stream fixture: its
	// content type, file extension and the separator after each event;
	// or frames, when set, turns the fixture into the events to write.
	streamType, streamExt string
	split                 []byte
	frames                func(fixture []byte) [][]byte
	// midstream is the event that fails a stream after its first one.
	midstream []byte
}

// ProviderUpstream is a fake native-format provider (Gemini, Cohere,
// Ollama or Bedrock). It checks the key as the provider does and answers with the
// wire fixtures: the tool call answer when the request offers tools
// (unless its last turn brings a tool's result back), the plain answer
// otherwise, streamed when asked, one event (or line) per write.
type ProviderUpstream struct {
	*httptest.Server
	// Key is the key the upstream accepts; "" accepts any (a local Ollama).
	Key string
	// EventDelay, when set, is a pause before each streamed event: a slow stream.
	EventDelay time.Duration
	// Hold, when not nil, pauses every stream after its first HoldAfter
	// events (1 when zero) until the channel is closed or the caller
	// goes away.
	Hold      chan struct{}
	HoldAfter int
	// Cancelled receives a value each time a stream's request ended
	// before the stream did; Finished each time a stream was written to
	// its end.
	Cancelled, Finished chan struct{}

	d        *dialect
	mu       sync.Mutex
	received []Received
	fail     Failure
}

// NewGeminiUpstream starts a fake Gemini Developer API under /v1beta that
// accepts key in x-goog-api-key; it is closed when the test ends.
func NewGeminiUpstream(t testing.TB, key string) *ProviderUpstream {
	return newProviderUpstream(t, key, &geminiDialect)
}

// NewCohereUpstream starts a fake Cohere v2 chat API that accepts key as
// a bearer token; it is closed when the test ends.
func NewCohereUpstream(t testing.TB, key string) *ProviderUpstream {
	return newProviderUpstream(t, key, &cohereDialect)
}

// NewOllamaUpstream starts a fake Ollama native API; with a key it wants
// it as a bearer token (Ollama Cloud), without one it takes any request
// (a local Ollama). It is closed when the test ends.
func NewOllamaUpstream(t testing.TB, key string) *ProviderUpstream {
	return newProviderUpstream(t, key, &ollamaDialect)
}

func newProviderUpstream(t testing.TB, key string, d *dialect) *ProviderUpstream {
	u := &ProviderUpstream{Key: key, d: d, Cancelled: make(chan struct{}, 16), Finished: make(chan struct{}, 16)}
	u.Server = httptest.NewServer(http.HandlerFunc(u.serve))
	t.Cleanup(u.Close)
	return u
}

// Fail makes every later answer fail in the given way; "" answers again.
func (u *ProviderUpstream) Fail(f Failure) {
	u.mu.Lock()
	u.fail = f
	u.mu.Unlock()
}

// Requests returns what the upstream received so far.
func (u *ProviderUpstream) Requests() []Received {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]Received(nil), u.received...)
}

// Paths returns the request URIs (path and query) received so far.
func (u *ProviderUpstream) Paths() []string {
	var paths []string
	for _, r := range u.Requests() {
		paths = append(paths, r.Path)
	}
	return paths
}

func (u *ProviderUpstream) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	u.mu.Lock()
	u.received = append(u.received, Received{Header: r.Header.Clone(), Body: body, Path: r.URL.RequestURI()})
	fail := u.fail
	u.mu.Unlock()

	chat, streamed := u.d.route(r)
	if r.Method != http.MethodPost || !chat {
		u.write(w, u.d.notFound)
		return
	}
	if !u.d.authorized(r, u.Key) || fail == FailAuth {
		u.write(w, u.d.failures[FailAuth])
		return
	}
	stream, toolTurn, err := u.d.read(body, streamed)
	if err != nil {
		u.write(w, u.d.bad)
		return
	}
	if a, ok := u.d.failures[fail]; ok {
		u.write(w, a)
		return
	}
	prefix := "chat"
	if toolTurn {
		prefix = "tool_call"
	}
	if !stream {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.Write(ProviderFixture(u.d.provider, prefix+"_response.json"))
		return
	}
	w.Header().Set("Content-Type", u.d.streamType)
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	fixture := ProviderFixture(u.d.provider, prefix+"_stream"+u.d.streamExt)
	events := bytes.SplitAfter(fixture, u.d.split)
	if u.d.frames != nil {
		events = u.d.frames(fixture)
	}
	if fail == FailMidstream {
		events = [][]byte{events[0], u.d.midstream}
	}
	// Read once: a test may reset them while this stream winds down.
	hold, holdAfter := u.Hold, max(u.HoldAfter, 1)
	written := 0
	for _, ev := range events {
		if len(ev) == 0 {
			continue
		}
		if u.EventDelay > 0 {
			select {
			case <-time.After(u.EventDelay):
			case <-r.Context().Done():
				signal(u.Cancelled)
				return
			}
		}
		if _, err := w.Write(ev); err != nil {
			signal(u.Cancelled)
			return
		}
		if err := rc.Flush(); err != nil {
			signal(u.Cancelled)
			return
		}
		if written++; written == holdAfter && hold != nil {
			select {
			case <-hold:
			case <-r.Context().Done():
				signal(u.Cancelled)
				return
			}
		}
	}
	signal(u.Finished)
}

// signal sends on ch without blocking.
func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

func (u *ProviderUpstream) write(w http.ResponseWriter, a answer) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	for k, v := range a.header {
		w.Header()[k] = v
	}
	w.WriteHeader(a.status)
	w.Write(a.body)
}

// lastRole reads the role of the last message of an OpenAI-shaped
// message list (Cohere's and Ollama's).
func lastRole(msgs []struct {
	Role string `json:"role"`
}) string {
	if len(msgs) == 0 {
		return ""
	}
	return msgs[len(msgs)-1].Role
}

// readMessages reads an OpenAI-shaped body (Cohere's and Ollama's): its
// stream flag, with the default given, and whether it is a tool turn.
func readMessages(body []byte, streamDefault bool) (stream, toolTurn bool, err error) {
	var req struct {
		Stream   *bool             `json:"stream"`
		Tools    []json.RawMessage `json:"tools"`
		Messages []struct {
			Role string `json:"role"`
		} `json:"messages"`
	}
	if err := json.Unmarshal(body, &req); err != nil || len(req.Messages) == 0 {
		return false, false, io.ErrUnexpectedEOF
	}
	stream = streamDefault
	if req.Stream != nil {
		stream = *req.Stream
	}
	return stream, len(req.Tools) > 0 && lastRole(req.Messages) != "tool", nil
}

func googleError(code int, status, message string) []byte {
	b, _ := json.Marshal(map[string]any{"error": map[string]any{"code": code, "message": message, "status": status}})
	return b
}

var geminiDialect = dialect{
	provider: "gemini",
	route: func(r *http.Request) (bool, bool) {
		model, ok := strings.CutPrefix(r.URL.Path, "/v1beta/models/")
		switch {
		case !ok:
			return false, false
		case strings.HasSuffix(model, ":generateContent"):
			return true, false
		case strings.HasSuffix(model, ":streamGenerateContent") && r.URL.Query().Get("alt") == "sse":
			return true, true
		}
		// Without alt=sse Gemini streams a JSON array; the gateway must
		// never ask for that.
		return false, false
	},
	authorized: func(r *http.Request, key string) bool { return r.Header.Get("X-Goog-Api-Key") == key },
	read: func(body []byte, streamed bool) (bool, bool, error) {
		var req struct {
			Tools    []json.RawMessage `json:"tools"`
			Contents []struct {
				Parts []map[string]json.RawMessage `json:"parts"`
			} `json:"contents"`
		}
		if err := json.Unmarshal(body, &req); err != nil || len(req.Contents) == 0 {
			return false, false, io.ErrUnexpectedEOF
		}
		last := req.Contents[len(req.Contents)-1]
		result := false
		for _, p := range last.Parts {
			_, isResult := p["functionResponse"]
			result = result || isResult
		}
		return streamed, len(req.Tools) > 0 && !result, nil
	},
	notFound:   answer{http.StatusNotFound, nil, googleError(404, "NOT_FOUND", "Requested entity was not found.")},
	bad:        answer{http.StatusBadRequest, nil, googleError(400, "INVALID_ARGUMENT", "* GenerateContentRequest.contents: contents is not specified")},
	streamType: "text/event-stream",
	streamExt:  ".sse",
	split:      []byte("\n\n"),
	// "Errors in the middle of a stream arrive as a JSON {"error":{...}} line."
	midstream: []byte("data: " + string(googleError(503, "UNAVAILABLE", "The model is overloaded. Please try again later.")) + "\n\n"),
	failures: map[Failure]answer{
		FailRateLimit:     {http.StatusTooManyRequests, nil, ProviderFixture("gemini", "error_429.json")},
		FailAuth:          {http.StatusBadRequest, nil, ProviderFixture("gemini", "error_400_invalid_api_key.json")},
		FailContextLength: {http.StatusBadRequest, nil, ProviderFixture("gemini", "error_400_context_length.json")},
	},
}

var cohereDialect = dialect{
	provider: "cohere",
	route:    func(r *http.Request) (bool, bool) { return r.URL.Path == "/v2/chat", false },
	authorized: func(r *http.Request, key string) bool {
		return r.Header.Get("Authorization") == "Bearer "+key
	},
	read:       func(body []byte, _ bool) (bool, bool, error) { return readMessages(body, false) },
	notFound:   answer{http.StatusNotFound, nil, []byte(`{"message":"404 page not found"}`)},
	bad:        answer{http.StatusBadRequest, nil, []byte(`{"message":"invalid request: messages must not be empty"}`)},
	streamType: "text/event-stream",
	streamExt:  ".sse",
	split:      []byte("\n\n"),
	midstream:  []byte("event: message-end\ndata: {\"type\":\"message-end\",\"delta\":{\"finish_reason\":\"ERROR\",\"error\":\"internal server error\"}}\n\n"),
	failures: map[Failure]answer{
		FailRateLimit: {http.StatusTooManyRequests, nil, ProviderFixture("cohere", "error_429.json")},
		FailAuth:      {http.StatusUnauthorized, nil, ProviderFixture("cohere", "error_401.json")},
		FailContextLength: {http.StatusBadRequest, nil,
			[]byte(`{"message":"too many tokens: size limit exceeded by 1711 tokens. Try using shorter or fewer inputs, or setting prompt_truncation='AUTO'."}`)},
	},
}

var ollamaDialect = dialect{
	provider: "ollama",
	route:    func(r *http.Request) (bool, bool) { return r.URL.Path == "/api/chat", false },
	authorized: func(r *http.Request, key string) bool {
		return key == "" || r.Header.Get("Authorization") == "Bearer "+key
	},
	// Ollama streams unless told not to.
	read:       func(body []byte, _ bool) (bool, bool, error) { return readMessages(body, true) },
	notFound:   answer{http.StatusNotFound, http.Header{"Content-Type": {"text/plain"}}, []byte("404 page not found")},
	bad:        answer{http.StatusBadRequest, nil, []byte(`{"error":"invalid request body"}`)},
	streamType: "application/x-ndjson",
	streamExt:  ".ndjson",
	split:      []byte("\n"),
	midstream:  []byte(`{"error":"an error was encountered while running the model: unexpected EOF"}` + "\n"),
	failures: map[Failure]answer{
		FailRateLimit:     {http.StatusTooManyRequests, nil, []byte(`{"error":"too many concurrent requests; please retry shortly"}`)},
		FailAuth:          {http.StatusUnauthorized, nil, []byte(`{"error":"unauthorized"}`)},
		FailContextLength: {http.StatusBadRequest, nil, []byte(`{"error":"request (351 tokens) exceeds the available context size (256 tokens), try increasing it"}`)},
	},
}

// NewBedrockUpstream starts a fake Bedrock Runtime Converse API that
// accepts key as a Bedrock API key (Authorization: Bearer) and streams
// binary AWS event-stream frames; it is closed when the test ends.
func NewBedrockUpstream(t testing.TB, key string) *ProviderUpstream {
	return newProviderUpstream(t, key, &bedrockDialect)
}

// EventStreamFrames encodes a .eventstream.txt fixture, whose lines show
// decoded frames as "<:event-type> <payload JSON>" (# starts a comment),
// as the binary AWS event-stream frames Bedrock sends, one per line.
func EventStreamFrames(fixture []byte) [][]byte {
	var frames [][]byte
	for _, line := range strings.Split(string(fixture), "\n") {
		event, payload, ok := strings.Cut(strings.TrimSpace(line), " ")
		if !ok || strings.HasPrefix(event, "#") {
			continue
		}
		frames = append(frames, adapters.AppendFrame(nil, []string{":event-type", ":content-type", ":message-type"},
			map[string]string{":event-type": event, ":content-type": "application/json", ":message-type": "event"}, []byte(payload)))
	}
	return frames
}

func amznError(status int, typ, message string) answer {
	body, _ := json.Marshal(map[string]string{"message": message})
	return answer{status, http.Header{"X-Amzn-Errortype": {typ + ":http://internal.amazon.com/coral/com.amazon.bedrock/"}}, body}
}

var bedrockDialect = dialect{
	provider: "bedrock",
	route: func(r *http.Request) (bool, bool) {
		rest, ok := strings.CutPrefix(r.URL.Path, "/model/")
		switch {
		case ok && strings.HasSuffix(rest, "/converse"):
			return true, false
		case ok && strings.HasSuffix(rest, "/converse-stream"):
			return true, true
		}
		return false, false
	},
	authorized: func(r *http.Request, key string) bool { return r.Header.Get("Authorization") == "Bearer "+key },
	read: func(body []byte, streamed bool) (bool, bool, error) {
		var req struct {
			Messages []struct {
				Content []map[string]json.RawMessage `json:"content"`
			} `json:"messages"`
			ToolConfig struct {
				Tools []json.RawMessage `json:"tools"`
			} `json:"toolConfig"`
		}
		if err := json.Unmarshal(body, &req); err != nil || len(req.Messages) == 0 {
			return false, false, io.ErrUnexpectedEOF
		}
		result := false
		for _, b := range req.Messages[len(req.Messages)-1].Content {
			_, isResult := b["toolResult"]
			result = result || isResult
		}
		return streamed, len(req.ToolConfig.Tools) > 0 && !result, nil
	},
	notFound:   amznError(http.StatusNotFound, "UnknownOperationException", "Not Found"),
	bad:        amznError(http.StatusBadRequest, "ValidationException", "Malformed input request, please reformat your input and try again."),
	streamType: "application/vnd.amazon.eventstream",
	streamExt:  ".eventstream.txt",
	frames:     EventStreamFrames,
	midstream: adapters.AppendFrame(nil, []string{":exception-type", ":content-type", ":message-type"},
		map[string]string{":exception-type": "modelStreamErrorException", ":content-type": "application/json", ":message-type": "exception"},
		[]byte(`{"message":"The model stream failed."}`)),
	failures: map[Failure]answer{
		FailRateLimit:     {http.StatusTooManyRequests, http.Header{"X-Amzn-Errortype": {"ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/"}}, ProviderFixture("bedrock", "error_429.json")},
		FailAuth:          amznError(http.StatusForbidden, "UnrecognizedClientException", "The security token included in the request is invalid."),
		FailContextLength: amznError(http.StatusBadRequest, "ValidationException", "Input is too long for requested model."),
	},
}
