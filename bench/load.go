package main

import (
	"bytes"
	"context"
	_ "embed"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// The load sends OpenAI's own example requests.
var (
	//go:embed wire/chat_request.json
	chatRequestBody []byte
	//go:embed wire/chat_stream_request.json
	chatStreamRequestBody []byte
)

// requestTimeout bounds one call, so that every attack ends.
const requestTimeout = 10 * time.Second

// maxFixedRateWorkers bounds the concurrent calls of a fixed-rate attack.
const maxFixedRateWorkers = 2048

// streamEnd is how every complete OpenAI chat stream ends.
var streamEnd = []byte("data: [DONE]\n\n")

// Mode is one kind of call the harness measures.
type Mode struct {
	// Name is how the report calls it.
	Name string
	// Stream says the call asks for an event stream, which is complete
	// only when it ends with data: [DONE].
	Stream bool
	body   []byte
}

// Modes are the kinds of call measured, in report order. The streamed
// request asks for the usage chunk (stream_options.include_usage), so the
// upstream sends the same bytes whether the gateway is in front or not.
var Modes = []Mode{
	{Name: "non-streaming", body: chatRequestBody},
	{Name: "streaming", Stream: true, body: chatStreamRequestBody},
}

// Load is the load generator: one vegeta attacker per attack, all with the
// same settings, against whichever server is measured.
type Load struct {
	// Key is sent as "Authorization: Bearer" on every call; the upstream and
	// the bare proxy ignore it, the gateway requires it.
	Key string
}

// Attack is one run of load against one server.
type Attack struct {
	// URL is the server's root.
	URL  string
	Mode Mode
	// Rate is the request rate; zero means as fast as Workers allow,
	// each waiting for its answer before sending the next (a closed loop).
	Rate int
	// Workers is the number of concurrent callers, and with them of
	// connections: fixed for a closed loop, the initial number otherwise.
	Workers int
	// Duration is how long requests are sent.
	Duration time.Duration
	// Calls, when not zero, ends the attack after this many calls.
	Calls int
}

// Measurement is what one attack saw.
type Measurement struct {
	Requests int
	// OK counts calls answered 200 with a complete body.
	OK int
	// Incomplete counts streams answered 200 that did not end with
	// data: [DONE]: a stream the client would see cut short.
	Incomplete int
	// Errors counts the other failures by their message.
	Errors map[string]int
	// Elapsed is from the first request sent to the last answer read.
	Elapsed time.Duration
	// latencies are those of the OK calls, sorted: from sending the
	// request to reading the last byte of the answer.
	latencies []time.Duration
}

// Run sends the attack's load and measures it. It returns when the attack
// is over or ctx is done, whichever comes first.
func (l *Load) Run(ctx context.Context, a Attack) (*Measurement, error) {
	// A closed loop (no rate): a worker sends its next request once it
	// has read the answer to the last, so the number of workers is the
	// concurrency and the rate is what the server sustains. A fixed rate:
	// vegeta adds workers when the server falls behind, up to a bound that
	// keeps a stalled server from exhausting ports.
	var pacer vegeta.Pacer = vegeta.Rate{Freq: a.Rate, Per: time.Second}
	maxWorkers := max(a.Workers, maxFixedRateWorkers)
	if a.Rate == 0 {
		pacer, maxWorkers = vegeta.Rate{}, a.Workers
	}
	// Every worker keeps its connection between calls, as clients of an
	// LLM gateway do, so that the load measures calls, not TCP handshakes.
	transport := &http.Transport{
		Proxy:               nil, // the load goes to 127.0.0.1 only
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost: maxWorkers,
		IdleConnTimeout:     30 * time.Second,
	}
	defer transport.CloseIdleConnections()
	opts := []func(*vegeta.Attacker){
		vegeta.Client(&http.Client{Transport: transport, Timeout: requestTimeout}),
		vegeta.Workers(uint64(a.Workers)),
		vegeta.MaxWorkers(uint64(maxWorkers)),
		vegeta.Redirects(vegeta.NoFollow),
	}
	if a.Calls > 0 {
		pacer = stopAfter(pacer, a.Calls)
	}
	attacker := vegeta.NewAttacker(opts...)
	target := vegeta.Target{
		Method: http.MethodPost,
		URL:    a.URL + "/v1/chat/completions",
		Body:   a.Mode.body,
		Header: http.Header{
			"Content-Type":  {"application/json"},
			"Authorization": {"Bearer " + l.Key},
		},
	}
	m := &Measurement{Errors: map[string]int{}}
	var first, last time.Time
	results := attacker.Attack(vegeta.NewStaticTargeter(target), pacer, a.Duration, a.Mode.Name)
	for {
		select {
		case <-ctx.Done():
			attacker.Stop()
			for range results {
			}
			return nil, fmt.Errorf("attack %s: %w", a.URL, ctx.Err())
		case r, ok := <-results:
			if !ok {
				m.Elapsed = last.Sub(first)
				slices.Sort(m.latencies)
				return m, nil
			}
			if first.IsZero() || r.Timestamp.Before(first) {
				first = r.Timestamp
			}
			if end := r.End(); end.After(last) {
				last = end
			}
			m.add(r, a.Mode)
		}
	}
}

// stopAfter ends p's attack after n calls.
func stopAfter(p vegeta.Pacer, n int) vegeta.Pacer { return countedPacer{p, uint64(n)} }

// countedPacer is a pacer that stops after a number of calls.
type countedPacer struct {
	vegeta.Pacer
	calls uint64
}

var _ vegeta.Pacer = countedPacer{}

// Pace implements vegeta.Pacer.
func (p countedPacer) Pace(elapsed time.Duration, hits uint64) (time.Duration, bool) {
	if hits >= p.calls {
		return 0, true
	}
	return p.Pacer.Pace(elapsed, hits)
}

// maxDistinctErrors bounds the failure messages kept apart, so a run of
// unique messages cannot grow the map without limit.
const maxDistinctErrors = 20

// add counts one result.
func (m *Measurement) add(r *vegeta.Result, mode Mode) {
	m.Requests++
	switch problem := checkResult(r, mode); problem {
	case "":
		m.OK++
		m.latencies = append(m.latencies, r.Latency)
	case errIncompleteStream:
		m.Incomplete++
	default:
		if _, seen := m.Errors[problem]; !seen && len(m.Errors) >= maxDistinctErrors {
			problem = "(other failures)"
		}
		m.Errors[problem]++
	}
}

// errIncompleteStream is checkResult's verdict on a stream cut short.
const errIncompleteStream = "incomplete stream"

// checkResult returns what is wrong with a call's answer, or "".
func checkResult(r *vegeta.Result, mode Mode) string {
	switch {
	case strings.Contains(r.Error, "Client.Timeout"):
		// The harness gave up: the server was too slow, which is not the
		// same as a stream the server cut short.
		return r.Error
	case r.Error != "" && mode.Stream && (len(r.Body) > 0 || r.Error == io.ErrUnexpectedEOF.Error()):
		// The answer had begun (vegeta reads the body after the headers
		// only), then the connection broke: the stream was cut short.
		return errIncompleteStream
	case r.Error != "":
		return r.Error
	case r.Code != http.StatusOK:
		return fmt.Sprintf("HTTP %d: %.200s", r.Code, r.Body)
	case mode.Stream && !bytes.HasSuffix(r.Body, streamEnd):
		return errIncompleteStream
	case !mode.Stream && !bytes.Contains(r.Body, []byte(`"chat.completion"`)):
		return fmt.Sprintf("not a chat completion: %.200s", r.Body)
	}
	return ""
}

// Probe sends one call of each mode to the server and returns an error
// naming what is wrong if any answer is not a complete, successful one, so
// a broken setup fails at once instead of as a table of zeros.
func (l *Load) Probe(ctx context.Context, url string) error {
	for _, mode := range Modes {
		m, err := l.Run(ctx, Attack{URL: url, Mode: mode, Rate: 10, Workers: 1, Duration: time.Second, Calls: 1})
		if err != nil {
			return err
		}
		// A stream cut short is a result to measure, not a broken setup.
		if len(m.Errors) > 0 || m.Requests == 0 {
			return fmt.Errorf("probe %s with a %s call: %d of %d calls succeeded; failures: %v",
				url, mode.Name, m.OK, m.Requests, m.Errors)
		}
	}
	return nil
}

// Throughput is the number of successful calls per second.
func (m *Measurement) Throughput() float64 {
	if m.Elapsed <= 0 {
		return 0
	}
	return float64(m.OK) / m.Elapsed.Seconds()
}

// SuccessRatio is the share of calls that succeeded, from 0 to 1.
func (m *Measurement) SuccessRatio() float64 {
	if m.Requests == 0 {
		return 0
	}
	return float64(m.OK) / float64(m.Requests)
}

// Failed counts the calls that did not succeed.
func (m *Measurement) Failed() int { return m.Requests - m.OK }

// Quantile returns the latency below which the fraction q of successful
// calls fall (the nearest-rank method, exact over every call).
func (m *Measurement) Quantile(q float64) time.Duration {
	if len(m.latencies) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(m.latencies)))) - 1
	return m.latencies[min(max(i, 0), len(m.latencies)-1)]
}

// TopErrors returns up to n failure messages, the most frequent first.
func (m *Measurement) TopErrors(n int) []string {
	msgs := make([]string, 0, len(m.Errors))
	for msg := range m.Errors {
		msgs = append(msgs, msg)
	}
	sort.Slice(msgs, func(i, j int) bool {
		if m.Errors[msgs[i]] != m.Errors[msgs[j]] {
			return m.Errors[msgs[i]] > m.Errors[msgs[j]]
		}
		return msgs[i] < msgs[j]
	})
	if len(msgs) > n {
		msgs = msgs[:n]
	}
	for i, msg := range msgs {
		msgs[i] = fmt.Sprintf("%d× %s", m.Errors[msg], msg)
	}
	return msgs
}
