package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// quickstartBlock finds the fenced block that follows a marker comment.
var quickstartBlock = regexp.MustCompile("(?s)<!-- quickstart:([a-z]+) -->\\s*```sh\\n(.*?)```")

// The README's curl examples run as written against the README's run
// command (the example config), with only the port changed.
func TestREADMEQuickstart(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatal("curl is needed for the README test; make test installs it")
	}
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := map[string]string{}
	for _, m := range quickstartBlock.FindAllStringSubmatch(string(readme), -1) {
		blocks[m[1]] = m[2]
	}
	for _, name := range []string{"chat", "stream", "embeddings"} {
		if !strings.Contains(blocks[name], "curl") {
			t.Fatalf("README has no curl block marked <!-- quickstart:%s -->", name)
		}
	}
	cfg, auditFile := exampleConfig(t)
	g := startGateway(t, cfg, "PORTCULLIS_AUDIT_FILE="+auditFile, "OPENAI_API_KEY=")
	run := func(name string) string {
		script := strings.ReplaceAll(blocks[name], "127.0.0.1:8080", g.addr)
		script = strings.ReplaceAll(script, "localhost:8080", g.addr)
		var stderr strings.Builder
		cmd := exec.Command("sh", "-c", script)
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("README %s example failed: %v\n%s%s", name, err, out, stderr.String())
		}
		return string(out)
	}

	out := run("chat")
	var resp struct {
		Choices []struct {
			Message struct{ Content string } `json:"message"`
		} `json:"choices"`
		Usage struct {
			TotalTokens int `json:"total_tokens"`
		} `json:"usage"`
	}
	if err := json.Unmarshal([]byte(out), &resp); err != nil || len(resp.Choices) != 1 || resp.Choices[0].Message.Content == "" || resp.Usage.TotalTokens == 0 {
		t.Errorf("README chat example printed %q (%v)", out, err)
	}

	out = run("stream")
	if !strings.Contains(out, "data: {") || !strings.Contains(out, "data: [DONE]") || strings.Count(out, "data: ") < 10 {
		t.Errorf("README stream example printed %q", out)
	}

	out = run("embeddings")
	var emb struct {
		Data []struct {
			Embedding []float64 `json:"embedding"`
		} `json:"data"`
		Usage struct {
			PromptTokens int `json:"prompt_tokens"`
		} `json:"usage"`
	}
	if err := json.Unmarshal([]byte(out), &emb); err != nil || len(emb.Data) != 2 || len(emb.Data[0].Embedding) == 0 || emb.Usage.PromptTokens == 0 {
		t.Errorf("README embeddings example printed %q (%v)", out, err)
	}
}
