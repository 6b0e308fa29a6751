package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"portcullis/internal/testkit"
)

const usageKey = "pcx_e2e_usage_key_alice"

// usageGateway writes a gateway folder: the demo model, one API key
// (alice, group ml), a policy giving group ml a daily budget of budget
// tokens, and a usage section with store. It returns the config file.
func usageGateway(t *testing.T, budget int, store, extra string) string {
	return usageGatewayWith(t, budget, store, extra, "", "")
}

// usageGatewayWith is usageGateway with more providers and models (YAML
// list items).
func usageGatewayWith(t *testing.T, budget int, store, extra, providers, models string) string {
	t.Helper()
	dir := t.TempDir()
	policies := filepath.Join(dir, "policies")
	if err := os.MkdirAll(policies, 0o755); err != nil {
		t.Fatal(err)
	}
	rego := fmt.Sprintf("package portcullis\n\ndecision := {\"allow\": true, \"budgets\": [{\"key\": \"group:ml\", \"window\": \"day\", \"tokens\": %d}]}\n", budget)
	if err := os.WriteFile(filepath.Join(policies, "p.rego"), []byte(rego), 0o600); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(usageKey))
	cfg := fmt.Sprintf(`server:
  listen: ${PORTCULLIS_LISTEN}
providers:
  - name: demo
    type: demo
    word_delay: 1ms
%s
models:
  - name: demo
    provider: demo
%s
auth:
  api_keys:
    - name: alice
      hash: sha256:%s
      subject: alice
      groups: [ml]
policy:
  dir: %s
audit:
  file: %s
usage:
  store: %s
  file: ${PORTCULLIS_USAGE_FILE}
%s`, providers, models, hex.EncodeToString(sum[:]), policies, filepath.Join(dir, "audit.log"), store, extra)
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// demoCall is one chat call whose answer the demo model cuts at 10
// tokens, so that every call uses the same tokens. It returns the status
// and the total tokens of the answer's usage.
func demoCall(client *http.Client, g *gateway) (int, int, error) {
	req, _ := http.NewRequest(http.MethodPost, g.URL()+"/v1/chat/completions", strings.NewReader(
		`{"model":"demo","max_tokens":10,"messages":[{"role":"user","content":"Tell me a long story about budgets, please."}]}`))
	req.Header.Set("Authorization", "Bearer "+usageKey)
	resp, err := client.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, 0, err
	}
	var answer struct {
		Usage struct {
			TotalTokens int `json:"total_tokens"`
		} `json:"usage"`
	}
	json.Unmarshal(body, &answer)
	return resp.StatusCode, answer.Usage.TotalTokens, nil
}

// groupUsage reads group:ml's day through GET /v1/usage.
func groupUsage(t *testing.T, g *gateway) (tokens, requests int64) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, g.URL()+"/v1/usage", nil)
	req.Header.Set("Authorization", "Bearer "+usageKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var rep struct {
		Budgets []struct {
			Key          string `json:"key"`
			UsedTokens   int64  `json:"used_tokens"`
			UsedRequests int64  `json:"used_requests"`
		} `json:"budgets"`
	}
	body, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(body, &rep); err != nil || len(rep.Budgets) != 1 || rep.Budgets[0].Key != "group:ml" {
		t.Fatalf("GET /v1/usage: %d %s", resp.StatusCode, body)
	}
	return rep.Budgets[0].UsedTokens, rep.Budgets[0].UsedRequests
}

// perCall is what one demo call uses, measured with a gateway that has
// room to spare.
func perCall(t *testing.T) int {
	t.Helper()
	g := startGateway(t, usageGateway(t, 1_000_000, "embedded", ""))
	status, tokens, err := demoCall(http.DefaultClient, g)
	if err != nil || status != 200 || tokens == 0 {
		t.Fatalf("reference call: %d %v", status, err)
	}
	return tokens
}

// fire sends n calls at once, spread over the gateways, and counts the answers.
func fire(t *testing.T, n int, gateways ...*gateway) (ok, refused int64) {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: n}}
	var wg sync.WaitGroup
	var okN, refusedN atomic.Int64
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(g *gateway) {
			defer wg.Done()
			<-start
			status, _, err := demoCall(client, g)
			switch {
			case err != nil:
				t.Error(err)
			case status == 200:
				okN.Add(1)
			case status == 429:
				refusedN.Add(1)
			default:
				t.Errorf("status %d", status)
			}
		}(gateways[i%len(gateways)])
	}
	close(start)
	wg.Wait()
	return okN.Load(), refusedN.Load()
}

// 200 concurrent calls against a budget that fits 50 never settle more
// than the budget: one gateway with its embedded store, and two gateway
// processes sharing a real Redis.
func TestConcurrentCallsWithinBudgetThroughTheBinary(t *testing.T) {
	per := perCall(t)
	budget := 50 * per
	t.Run("embedded", func(t *testing.T) {
		g := startGateway(t, usageGateway(t, budget, "embedded", ""))
		ok, refused := fire(t, 200, g)
		tokens, requests := groupUsage(t, g)
		t.Logf("embedded: %d answered, %d refused; %d of %d tokens settled (%d per call)", ok, refused, tokens, budget, per)
		if tokens > int64(budget) || requests != ok || ok < 40 || refused == 0 {
			t.Errorf("%d answered, %d refused; settled %d tokens in %d calls against %d", ok, refused, tokens, requests, budget)
		}
	})
	t.Run("two gateways, one redis", func(t *testing.T) {
		redis := testkit.StartRedis(t)
		cfg := usageGateway(t, budget, redis, "")
		a, b := startGateway(t, cfg), startGateway(t, cfg)
		ok, refused := fire(t, 200, a, b)
		tokens, requests := groupUsage(t, a)
		tokensB, _ := groupUsage(t, b)
		t.Logf("redis: %d answered, %d refused; %d of %d tokens settled (%d per call)", ok, refused, tokens, budget, per)
		if tokens != tokensB {
			t.Errorf("the gateways disagree: %d and %d tokens", tokens, tokensB)
		}
		if tokens > int64(budget) || requests != ok || ok < 40 || refused == 0 {
			t.Errorf("%d answered, %d refused; settled %d tokens in %d calls against %d", ok, refused, tokens, requests, budget)
		}
	})
}

var syncedLine = regexp.MustCompile(`"msg":"usage log synced"[^\n]*"settled":(\d+)`)

// lastSynced is the settlements the gateway's log says are on disk.
func lastSynced(g *gateway) int64 {
	m := syncedLine.FindAllStringSubmatch(g.stderr.String(), -1)
	if len(m) == 0 {
		return 0
	}
	n, _ := strconv.ParseInt(m[len(m)-1][1], 10, 64)
	return n
}

// A gateway killed with SIGKILL under load, then restarted on the same
// usage file, still counts every call settled before its last flush (and
// each call in flight at the reservation it held).
func TestKill9KeepsSettledUsage(t *testing.T) {
	per := int64(perCall(t))
	usageFile := filepath.Join(t.TempDir(), "usage.log")
	cfg := usageGateway(t, 100_000_000, "embedded", "  flush_interval: 100ms\nlog:\n  level: debug\n")
	g := startGateway(t, cfg, "PORTCULLIS_USAGE_FILE="+usageFile)

	var started, answered atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 32}}
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				started.Add(1)
				if status, _, err := demoCall(client, g); err == nil && status == 200 {
					answered.Add(1)
				}
			}
		}()
	}
	// Under load, wait until the log says a good number of settlements
	// reached the disk, then kill the process at once.
	deadline := time.Now().Add(60 * time.Second)
	for lastSynced(g) < 200 {
		if time.Now().After(deadline) {
			t.Fatalf("no 200 settlements synced; %d answered:\n%s", answered.Load(), g.stderr.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	synced := lastSynced(g)
	if err := g.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	close(stop)
	wg.Wait()
	<-g.done
	g.done <- nil
	calls := started.Load()

	g2 := startGateway(t, cfg, "PORTCULLIS_USAGE_FILE="+usageFile)
	tokens, requests := groupUsage(t, g2)
	t.Logf("killed after %d settlements synced (%d calls started, %d answered); after restart: %d calls, %d tokens (%d per call)",
		synced, calls, answered.Load(), requests, tokens, per)
	// Every settlement the log said was on disk is counted...
	if requests < synced || tokens < synced*per {
		t.Errorf("after restart %d calls and %d tokens are counted; %d settlements of %d tokens were on disk", requests, tokens, synced, per)
	}
	// ...and nothing is counted twice or invented.
	if requests > calls {
		t.Errorf("%d calls counted, only %d were made", requests, calls)
	}
}

// A streamed answer that would pass its budget is cut at the limit: the
// OpenAI SDK reads a well-formed stream ending in finish_reason "length"
// (and [DONE]), and the audit file says why. The upstream ignores
// max_tokens, as a provider that does not honour it would.
func TestStreamCutAtBudgetThroughTheBinary(t *testing.T) {
	long := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		chunk := `data: {"id":"chatcmpl-long","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":" word"},"finish_reason":null}]}` + "\n\n"
		for i := 0; i < 1000; i++ {
			if _, err := io.WriteString(w, chunk); err != nil {
				return
			}
			http.NewResponseController(w).Flush()
		}
		io.WriteString(w, `data: {"id":"chatcmpl-long","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}`+"\n\ndata: [DONE]\n\n")
	}))
	defer long.Close()
	cfg := usageGatewayWith(t, 300, "embedded", "",
		"  - name: long\n    type: openai\n    base_url: "+long.URL+"/v1\n    api_key: sk-not-a-secret",
		"  - name: long\n    provider: long\n    upstream_model: gpt-4o-mini")
	g := startGateway(t, cfg)
	client := openai.NewClient(option.WithBaseURL(g.URL()+"/v1"), option.WithAPIKey(usageKey))
	stream := client.Chat.Completions.NewStreaming(withTimeout(t), openai.ChatCompletionNewParams{
		Model:         "long",
		Messages:      []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Say word, a thousand times.")},
		StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)},
	})
	var acc openai.ChatCompletionAccumulator
	for stream.Next() {
		acc.AddChunk(stream.Current())
	}
	if err := stream.Err(); err != nil {
		t.Fatalf("the stream did not end cleanly: %v", err)
	}
	words := strings.Count(acc.Choices[0].Message.Content, "word")
	if acc.Choices[0].FinishReason != "length" || words == 0 || words >= 300 || acc.Usage.CompletionTokens != int64(words) {
		t.Errorf("finish %q after %d words, usage %+v", acc.Choices[0].FinishReason, words, acc.Usage)
	}
	// The audit record, written when the call ended, says why.
	audit := filepath.Join(filepath.Dir(cfg), "audit.log")
	var line string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		b, _ := os.ReadFile(audit)
		if i := strings.Index(string(b), `"stream_cut":"budget`); i >= 0 {
			line = string(b)
			break
		}
	}
	if line == "" || !strings.Contains(line, `"outcome":"success"`) {
		t.Errorf("no audit record with stream_cut: %s", line)
	}
	tokens, _ := groupUsage(t, g)
	if tokens > 300 {
		t.Errorf("settled %d tokens against a budget of 300", tokens)
	}
}

// When Redis cannot be reached, a budget fails closed (503) unless it
// falls back to local counting (the call goes through, with a warning).
func TestRedisDownFailsClosedOrLocal(t *testing.T) {
	dead := "redis://" + freeAddr(t)
	g := startGateway(t, usageGateway(t, 1_000_000, dead, ""))
	status, _, err := demoCall(http.DefaultClient, g)
	if err != nil || status != http.StatusServiceUnavailable {
		t.Errorf("fail-closed: %d %v", status, err)
	}
	g2 := startGateway(t, usageGateway(t, 1_000_000, dead, "  on_store_error: local\n"))
	status, _, err = demoCall(http.DefaultClient, g2)
	if err != nil || status != http.StatusOK || !strings.Contains(g2.stderr.String(), "counting calls against this replica's local limits") {
		t.Errorf("local: %d %v\n%s", status, err, g2.stderr.String())
	}
}
