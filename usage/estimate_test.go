package usage

import (
	"bufio"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// sample is one paragraph of testdata/estimate with its true token counts.
type sample struct {
	file         string
	text         string
	o200k, cl100 int64
}

func loadSamples(t testing.TB) []sample {
	f, err := os.Open("testdata/estimate/counts.tsv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	paras := map[string][]string{}
	var out []sample
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		cols := strings.Split(line, "\t")
		name := cols[0]
		if paras[name] == nil {
			b, err := os.ReadFile("testdata/estimate/" + name)
			if err != nil {
				t.Fatal(err)
			}
			paras[name] = strings.Split(string(b), "\n\n")
		}
		i, _ := strconv.Atoi(cols[1])
		o, _ := strconv.ParseInt(cols[2], 10, 64)
		c, _ := strconv.ParseInt(cols[3], 10, 64)
		out = append(out, sample{file: name, text: paras[name][i], o200k: o, cl100: c})
	}
	return out
}

// errorBound is what the estimate is held to, measured on the shipped
// samples against o200k_base and cl100k_base (docs/budgets.md): per file
// (a realistic prompt of a few thousand characters) and per paragraph of
// at least 20 tokens.
const (
	fileBound      = 0.20
	paragraphBound = 0.45
)

func TestEstimateTextErrorBound(t *testing.T) {
	samples := loadSamples(t)
	type totals struct{ est, o, c int64 }
	files := map[string]*totals{}
	var paraErrs []float64
	for _, s := range samples {
		est := EstimateText(s.text)
		ft := files[s.file]
		if ft == nil {
			ft = &totals{}
			files[s.file] = ft
		}
		ft.est += est
		ft.o += s.o200k
		ft.c += s.cl100
		if s.o200k >= 20 {
			for _, truth := range []int64{s.o200k, s.cl100} {
				e := float64(est-truth) / float64(truth)
				paraErrs = append(paraErrs, e)
				if math.Abs(e) > paragraphBound {
					t.Errorf("%s: estimate %d, true %d (%+.0f%%): %.60q", s.file, est, truth, e*100, s.text)
				}
			}
		}
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		ft := files[n]
		eo, ec := float64(ft.est-ft.o)/float64(ft.o), float64(ft.est-ft.c)/float64(ft.c)
		t.Logf("%-22s estimate %5d  o200k %5d (%+5.1f%%)  cl100k %5d (%+5.1f%%)", n, ft.est, ft.o, eo*100, ft.c, ec*100)
		if math.Abs(eo) > fileBound || math.Abs(ec) > fileBound {
			t.Errorf("%s: estimate off by more than %.0f%%", n, fileBound*100)
		}
	}
	sort.Float64s(paraErrs)
	if len(paraErrs) > 0 {
		t.Logf("paragraphs ≥20 tokens: %d comparisons, error min %+.1f%% median %+.1f%% max %+.1f%%",
			len(paraErrs), paraErrs[0]*100, paraErrs[len(paraErrs)/2]*100, paraErrs[len(paraErrs)-1]*100)
	}
}

func TestEstimateRequest(t *testing.T) {
	text := "Summarise the attached incident report in three bullet points."
	body := `{"model":"gpt-4o-mini-2024-07-18","max_tokens":100,"messages":[` +
		`{"role":"system","content":"You are terse."},` +
		`{"role":"user","content":[{"type":"text","text":"` + text + `"},` +
		`{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}}]}]}`
	// Priming, two messages' framing, their roles and texts, the part
	// types (and the keys of the nested parts, counted as schema keys),
	// and the image at its flat price; the model name is free.
	want := int64(primingTokens + 2*perItemTokens +
		EstimateText("system") + EstimateText("You are terse.") + EstimateText("user") +
		EstimateText("text") + EstimateText(text) + EstimateText("image_url") + imageTokens +
		4 /* type, text, type, image_url keys at depth 5 */ + 1 /* url */)
	if got := EstimateRequest([]byte(body)); got != want {
		t.Errorf("estimate %d, want %d", got, want)
	}
	if EstimateRequest([]byte(`{"model":"x"}`)) != primingTokens {
		t.Error("a request with no content costs more than its priming")
	}
}

func BenchmarkEstimateRequest(b *testing.B) {
	body := []byte(`{"model":"gpt-4o","messages":[{"role":"system","content":"You are a helpful assistant for the platform team."},{"role":"user","content":"How do I rotate the gateway's API keys without downtime? We have three replicas behind a load balancer, and clients that retry on 5xx."}]}`)
	b.ReportAllocs()
	for b.Loop() {
		EstimateRequest(body)
	}
}

func TestEstimateOutput(t *testing.T) {
	for _, c := range []struct {
		event string
		want  int64
	}{
		{`{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}`, 0},
		{`{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":0,"delta":{"content":" Hello"},"finish_reason":null}]}`, 1},
		{`{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\": \"Paris\"}"}}]}}]}`, EstimateText(`{\"city\": \"Paris\"}`)},
		{`{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" world and more"}}`, 3},
		{`{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":12}}`, 0},
	} {
		if got := EstimateOutput([]byte(c.event)); got != c.want {
			t.Errorf("%s: %d, want %d", c.event, got, c.want)
		}
	}
}
