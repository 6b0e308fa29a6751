package authz

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

const allowAll = "package portcullis\n\ndecision := {\"allow\": true, \"reasons\": [\"v1\"]}\n"
const allowAllV2 = "package portcullis\n\ndecision := {\"allow\": true, \"reasons\": [\"v2\"]}\n"

func writePolicy(t *testing.T, dir, name, src string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
}

// A folder that fails to load leaves the previous policy deciding, and the
// failure is reported with its file and line.
func TestReloadKeepsLastGoodPolicy(t *testing.T) {
	dir := policyDir(t, map[string]string{"p.rego": allowAll})
	e := load(t, dir)
	first := e.Revision()

	writePolicy(t, dir, "p.rego", "package portcullis\n\ndecision := {\"allow\": true\n")
	changed, err := e.Reload(context.Background())
	if err == nil || changed || !strings.Contains(err.Error(), "p.rego:4") {
		t.Fatalf("Reload = %v, %v; want an error naming p.rego:4", changed, err)
	}
	if e.Revision() != first {
		t.Error("a broken policy replaced the good one")
	}
	st := e.Status()
	if st.Failures != 1 || !strings.Contains(st.LastError, "p.rego:4") || st.Revision != first {
		t.Errorf("status %+v", st)
	}
	if d, err := e.Decide(context.Background(), input(nil, "m")); err != nil || d.Reasons[0] != "v1" {
		t.Errorf("decision after failed reload: %+v, %v", d, err)
	}

	writePolicy(t, dir, "p.rego", allowAllV2)
	if changed, err := e.Reload(context.Background()); err != nil || !changed {
		t.Fatalf("Reload = %v, %v", changed, err)
	}
	if e.Revision() == first || e.Status().LastError != "" {
		t.Errorf("status after good reload: %+v", e.Status())
	}
	if d, _ := e.Decide(context.Background(), input(nil, "m")); d.Reasons[0] != "v2" {
		t.Errorf("decision after reload: %+v", d)
	}
}

// With require_tests, a bundle whose tests fail is refused, at start and
// on reload.
func TestRequireTests(t *testing.T) {
	passing := "package portcullis_test\n\nimport data.portcullis\n\ntest_allows if portcullis.decision.allow\n"
	failing := "package portcullis_test\n\nimport data.portcullis\n\ntest_denies if not portcullis.decision.allow\n"
	dir := policyDir(t, map[string]string{"p.rego": allowAll, "p_test.rego": passing})
	e, err := New(context.Background(), Options{Dir: dir, RequireTests: true})
	if err != nil {
		t.Fatal(err)
	}
	first := e.Revision()
	writePolicy(t, dir, "p_test.rego", failing)
	writePolicy(t, dir, "p.rego", allowAllV2)
	if _, err := e.Reload(context.Background()); err == nil || !strings.Contains(err.Error(), "test_denies") {
		t.Fatalf("reload with a failing test: %v", err)
	}
	if e.Revision() != first {
		t.Error("a bundle with failing tests was put in force")
	}
	if _, err := New(context.Background(), Options{Dir: dir, RequireTests: true}); err == nil {
		t.Error("start with failing tests succeeded")
	}
	empty := policyDir(t, map[string]string{"p.rego": allowAll})
	if _, err := New(context.Background(), Options{Dir: empty, RequireTests: true}); err == nil || !strings.Contains(err.Error(), "no _test.rego") {
		t.Errorf("require_tests without tests: %v", err)
	}
}

// Decisions in flight across reloads come from one revision or the other,
// never an error.
func TestDecideAcrossReloads(t *testing.T) {
	dir := policyDir(t, map[string]string{"p.rego": allowAll})
	e := load(t, dir)
	revs := map[string]bool{e.Revision(): true}
	var wg sync.WaitGroup
	errs := make(chan error, 1000)
	seen := make(chan string, 1000)
	for range 1000 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d, err := e.Decide(context.Background(), input(nil, "m"))
			if err != nil || !d.Allow {
				errs <- err
				return
			}
			seen <- d.Revision
		}()
	}
	for i := range 5 {
		src := allowAll
		if i%2 == 0 {
			src = allowAllV2
		}
		writePolicy(t, dir, "p.rego", src)
		if _, err := e.Reload(context.Background()); err != nil {
			t.Fatal(err)
		}
		revs[e.Revision()] = true
	}
	wg.Wait()
	close(errs)
	close(seen)
	for err := range errs {
		t.Errorf("a decision failed across a reload: %v", err)
	}
	n := 0
	for r := range seen {
		n++
		if !revs[r] {
			t.Errorf("decision from unknown revision %s", r)
		}
	}
	if n != 1000 {
		t.Errorf("%d decisions, want 1000", n)
	}
}

// Watch reloads on its own when a file changes.
func TestWatchReloadsOnChange(t *testing.T) {
	dir := policyDir(t, map[string]string{"p.rego": allowAll})
	e := load(t, dir)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reports := make(chan error, 10)
	go e.Watch(ctx, 20*time.Millisecond, func(changed bool, err error) {
		if changed || err != nil {
			reports <- err
		}
	})
	// Give the watcher a moment to register before writing; a write it
	// misses is retried below.
	deadline := time.After(10 * time.Second)
	for {
		writePolicy(t, dir, "p.rego", allowAllV2)
		select {
		case err := <-reports:
			if err != nil {
				t.Fatal(err)
			}
			if d, _ := e.Decide(context.Background(), input(nil, "m")); d.Reasons[0] != "v2" {
				t.Errorf("decision after watched reload: %+v", d)
			}
			return
		case <-time.After(200 * time.Millisecond):
		case <-deadline:
			t.Fatal("no reload after the policy file changed")
		}
	}
}

func TestModels(t *testing.T) {
	candidates := []string{"demo", "gpt-4.1", "o3"}
	withRule := policyDir(t, map[string]string{"p.rego": `package portcullis

decision := {"allow": true}

models contains m if {
	some m in input.models
	startswith(m, "gpt")
}
`})
	got, err := load(t, withRule).Models(context.Background(), input([]string{"x"}, ""), candidates)
	if err != nil || strings.Join(got, ",") != "gpt-4.1" {
		t.Errorf("with a models rule: %v, %v", got, err)
	}
	// Without one, the decision decides per model.
	got, err = load(t, "../policies").Models(context.Background(), input([]string{"demo"}, ""), candidates)
	if err != nil || strings.Join(got, ",") != "demo" {
		t.Errorf("default policy for group demo: %v, %v", got, err)
	}
	broken := policyDir(t, map[string]string{"p.rego": "package portcullis\n\ndecision := {\"allow\": true}\n\nmodels := 5\n"})
	if got, err := load(t, broken).Models(context.Background(), input(nil, ""), candidates); err == nil || len(got) != 0 {
		t.Errorf("malformed models rule: %v, %v", got, err)
	}
}
