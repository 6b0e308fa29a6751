package authz

import (
	"context"
	"testing"
	"time"
)

// A repeat call is answered from the cache with the decision evaluation
// gives; anything in the input that differs, including the second, is
// evaluated anew.
func TestDecisionCache(t *testing.T) {
	dir := policyDir(t, map[string]string{"p.rego": `package portcullis

decision := {"allow": true, "reasons": [sprintf("%s %d", [input.request.model, input.time.unix])]}
`})
	e := load(t, dir)
	b := e.current.Load()
	if b.decisions == nil {
		t.Fatal("a deterministic policy has no decision cache")
	}
	ctx := context.Background()
	in := input([]string{"g"}, "m")
	first, err := e.Decide(ctx, in)
	if err != nil || b.decisions.lru.Len() != 1 {
		t.Fatalf("first decision %+v, %v; cache holds %d", first, err, b.decisions.lru.Len())
	}
	again, _ := e.Decide(ctx, in)
	if again.Reasons[0] != first.Reasons[0] || b.decisions.lru.Len() != 1 {
		t.Errorf("repeat call: %v, cache holds %d", again.Reasons, b.decisions.lru.Len())
	}
	for name, change := range map[string]func(*Input){
		"model":     func(in *Input) { in.Request.Model = "other" },
		"second":    func(in *Input) { in.Time = in.Time.Add(time.Second) },
		"group":     func(in *Input) { in.Identity.Groups = []string{"g", "h"} },
		"subject":   func(in *Input) { in.Identity.Subject = "t" },
		"claims":    func(in *Input) { in.Identity.Claims = map[string]any{"scp": "x"} },
		"tools":     func(in *Input) { in.Request.Tools = []string{"a"} },
		"stream":    func(in *Input) { in.Request.Stream = true },
		"client ip": func(in *Input) { in.Request.ClientIP = "10.0.0.1" },
	} {
		other := input([]string{"g"}, "m")
		change(other)
		if other.key() == in.key() {
			t.Errorf("changing the %s does not change the cache key", name)
		}
	}
	later := input([]string{"g"}, "m")
	later.Time = later.Time.Add(time.Second)
	if d, _ := e.Decide(ctx, later); d.Reasons[0] == first.Reasons[0] {
		t.Errorf("a call a second later got the cached decision %v", d.Reasons)
	}
	// Within the same second the input is the same document.
	sameSecond := input([]string{"g"}, "m")
	sameSecond.Time = sameSecond.Time.Add(300 * time.Millisecond)
	if sameSecond.key() != in.key() {
		t.Error("inputs within one second differ in key, though the policy cannot tell them apart")
	}
}

func TestNoCacheForNondeterministicPolicies(t *testing.T) {
	for name, src := range map[string]string{
		"in the head": `decision := {"allow": true, "reasons": [sprintf("%d", [time.now_ns()])]}`,
		"in the body": "decision := {\"allow\": true} if {\n\tt := time.now_ns()\n\tt > 0\n}",
		"as a call":   "decision := {\"allow\": true} if {\n\ttime.now_ns(t)\n\tt > 0\n}",
		"http.send":   "decision := {\"allow\": r.status_code == 200} if {\n\tr := http.send({\"method\": \"GET\", \"url\": \"http://127.0.0.1:1\"})\n}",
	} {
		t.Run(name, func(t *testing.T) {
			dir := policyDir(t, map[string]string{"p.rego": "package portcullis\n\n" + src + "\n"})
			if b := load(t, dir).current.Load(); b.decisions != nil {
				t.Error("a policy calling a nondeterministic built-in has a decision cache")
			}
		})
	}
	if b := load(t, "../policies").current.Load(); b.decisions == nil {
		t.Error("the default policy has no decision cache")
	}
}

// Failed decisions (a malformed one, a cancelled evaluation) are not
// remembered: the next call evaluates again.
func TestCacheKeepsNoFailures(t *testing.T) {
	dir := policyDir(t, map[string]string{"p.rego": "package portcullis\n\ndecision := {\"allow\": \"yes\"}\n"})
	e := load(t, dir)
	if _, err := e.Decide(context.Background(), input([]string{"g"}, "m")); err == nil {
		t.Fatal("a malformed decision was accepted")
	}
	if n := e.current.Load().decisions.lru.Len(); n != 0 {
		t.Errorf("cache holds %d entries after a failed decision", n)
	}
}
