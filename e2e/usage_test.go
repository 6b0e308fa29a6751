package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
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

	"portcullis/internal/testkit"
)

const usageKey = "pcx_e2e_usage_key_alice"

// usageGateway writes a gateway folder: the demo model, one API key
// (alice, group ml), a policy giving group ml a daily budget of budget
// tokens, and a usage section with store. It returns the config file.
func usageGateway(t *testing.T, budget int, store, extra string) string {
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
models:
  - name: demo
    provider: demo
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
%s`, hex.EncodeToString(sum[:]), policies, filepath.Join(dir, "audit.log"), store, extra)
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
