package openai

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"portcullis/adapters"
)

// dialectFolders are the testdata folders of OpenAI's format and of the
// OpenAI-compatible dialects.
var dialectFolders = []string{"openai", "azure-openai", "groq", "mistral", "perplexity", "ollama-openai"}

// wireFixtures returns the fixtures matching pattern in every dialect's
// folder.
func wireFixtures(t testing.TB, pattern string) [][]byte {
	t.Helper()
	var paths []string
	for _, folder := range dialectFolders {
		p, err := filepath.Glob(filepath.Join("..", "..", "internal", "testkit", "testdata", folder, pattern))
		if err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p...)
	}
	if len(paths) == 0 {
		t.Fatalf("no fixtures %s", pattern)
	}
	var out [][]byte
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// A chat request translates into the unified request and back into a chat
// request the gateway reads again, or is refused with a RequestError.
func FuzzTranslateRequest(f *testing.F) {
	for _, b := range wireFixtures(f, "*request.json") {
		f.Add(b)
	}
	f.Add([]byte(`{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}}]}],"stop":"x","response_format":{"type":"json_schema","json_schema":{"name":"n","schema":{}}}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := DecodeRequest(body)
		if err != nil {
			var re *RequestError
			if !errors.As(err, &re) {
				t.Fatalf("DecodeRequest error %T", err)
			}
			return
		}
		out, err := EncodeRequest(req, "m2")
		if err != nil {
			var re *adapters.RequestError
			if !errors.As(err, &re) {
				t.Fatalf("EncodeRequest error %T %v", err, err)
			}
			return
		}
		if !json.Valid(out) {
			t.Fatalf("invalid JSON: %s", out)
		}
		if _, err := DecodeRequest(out); err != nil {
			t.Fatalf("the gateway cannot read its own translation %s: %v", out, err)
		}
	})
}

// Any chat completions stream decodes without panicking: it ends, tool
// argument fragments follow their call's start, and text joins.
func FuzzTranslateStream(f *testing.F) {
	for _, b := range wireFixtures(f, "*.sse") {
		f.Add(b)
		f.Add(b[:len(b)/3])
	}
	f.Fuzz(func(t *testing.T, stream []byte) {
		d := NewStreamDecoder(bytes.NewReader(stream))
		begun := map[int]bool{}
		e := NewStreamEncoder("m", true)
		var out bytes.Buffer
		for range 100000 {
			ev, err := d.Next()
			if err != nil {
				if errors.Is(err, io.EOF) {
					out.Write(e.End())
				}
				return
			}
			if ev.Type == adapters.EventToolCall {
				begun[ev.ToolIndex] = true
			}
			if ev.Type == adapters.EventToolArgs && !begun[ev.ToolIndex] {
				t.Fatalf("arguments for tool %d before its start", ev.ToolIndex)
			}
			out.Write(e.Encode(ev))
		}
		t.Fatal("the stream never ended")
	})
}

// Any response body decodes without panicking and re-encodes as JSON.
func FuzzTranslateResponse(f *testing.F) {
	for _, b := range wireFixtures(f, "*response.json") {
		f.Add(b)
	}
	for _, b := range wireFixtures(f, "error_*.json") {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if e := DecodeError(400, nil, body); e.Kind == "" {
			t.Fatal("an error without a kind")
		}
		resp, err := DecodeResponse(body)
		if err != nil {
			return
		}
		if out := EncodeResponse(resp, "m"); !json.Valid(out) {
			t.Fatalf("invalid JSON: %s", out)
		}
	})
}
