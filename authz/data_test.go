package authz

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"portcullis/authn"
)

// Data files in the policy folder are loaded as data, at the path of their
// folder, as `portcullis policy test` loads them.
func TestLoadReadsDataFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		t.Helper()
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("policy.rego", `package portcullis

default decision := {"allow": false, "reasons": ["not in a team that may use this model"]}

decision := {"allow": true} if {
	some g in input.identity.groups
	input.request.model in data.teams[g].models
}
`)
	write("teams/data.yaml", "ml:\n  models: [gpt-4.1]\n")
	e, err := Load(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	decide := func(group, model string) bool {
		d, err := e.Decide(context.Background(), &Input{
			Identity: &authn.Identity{Type: authn.TypeAPIKey, Subject: "s", Groups: []string{group}},
			Request:  Request{API: "chat", Model: model},
			Time:     time.Now(),
		})
		if err != nil {
			t.Fatal(err)
		}
		return d.Allow
	}
	if !decide("ml", "gpt-4.1") || decide("ml", "o3") || decide("sales", "gpt-4.1") {
		t.Error("decisions do not follow teams/data.yaml")
	}

	before := e.Revision()
	write("teams/data.yaml", "ml:\n  models: [o3]\n")
	e2, err := Load(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if e2.Revision() == before {
		t.Error("a changed data file did not change the revision")
	}
}
