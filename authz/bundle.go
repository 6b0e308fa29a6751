package authz

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/loader"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/tester"
)

// Queries the gateway evaluates.
const (
	// DecisionQuery decides every call.
	DecisionQuery = "data.portcullis.decision"
	// ModelsQuery lists the models a caller may see in GET /v1/models.
	ModelsQuery = "data.portcullis.models"
)

// bundle is one compiled revision of the policy folder: what was loaded and
// the queries prepared from it, shared by every request until replaced.
type bundle struct {
	revision string
	decision rego.PreparedEvalQuery
	// models is nil when the policy has no models rule; the gateway then
	// shows the models the decision allows.
	models *rego.PreparedEvalQuery
	// modules and documents are kept for explaining decisions.
	modules   []*ast.Module
	documents map[string]any
	// decisions is nil when the policy calls a nondeterministic built-in.
	decisions *decisionCache
}

// loadBundle reads the policy folder dir the way `opa test` does: every
// .rego file, and every .json and .yaml data file as data at the path of its
// folder (teams/data.json becomes data.teams). Tests (*_test.rego) are run
// when requireTests is set, and are otherwise left to `portcullis policy test`.
func loadBundle(ctx context.Context, dir string, requireTests bool) (*bundle, error) {
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("load policy: %w", err)
	}
	revision, err := revisionOf(dir)
	if err != nil {
		return nil, err
	}
	// Without require_tests the tests are not even parsed: a broken test
	// must not stop the gateway, only `portcullis policy test`.
	var skipTests loader.Filter
	if !requireTests {
		skipTests = func(_ string, info fs.FileInfo, _ int) bool {
			return !info.IsDir() && strings.HasSuffix(info.Name(), "_test.rego")
		}
	}
	loaded, err := loader.NewFileLoader().WithRegoVersion(ast.RegoV1).Filtered([]string{dir}, skipTests)
	if err != nil {
		return nil, fmt.Errorf("load policy: %w", err)
	}
	b := &bundle{revision: revision, documents: loaded.Documents}
	var tests map[string]*ast.Module
	for _, name := range sortedKeys(loaded.Modules) {
		f := loaded.Modules[name]
		if strings.HasSuffix(name, "_test.rego") {
			if tests == nil {
				tests = map[string]*ast.Module{}
			}
			tests[name] = f.Parsed
			continue
		}
		b.modules = append(b.modules, f.Parsed)
	}
	if len(b.modules) == 0 {
		return nil, fmt.Errorf("load policy: no .rego files in %s", dir)
	}
	if !definesRule(b.modules, "decision") {
		return nil, fmt.Errorf("load policy: no file in %s defines the rule decision in package portcullis; the gateway queries %s", dir, DecisionQuery)
	}
	if deterministic(b.modules) {
		b.decisions = newDecisionCache()
	}
	if b.decision, err = b.prepare(ctx, DecisionQuery); err != nil {
		return nil, err
	}
	if definesRule(b.modules, "models") {
		q, err := b.prepare(ctx, ModelsQuery)
		if err != nil {
			return nil, err
		}
		b.models = &q
	}
	if requireTests {
		if err := runTests(ctx, b, tests); err != nil {
			return nil, err
		}
	}
	return b, nil
}

func (b *bundle) regoOptions(query string) []func(*rego.Rego) {
	opts := []func(*rego.Rego){rego.Query(query), rego.Store(b.store())}
	for _, m := range b.modules {
		opts = append(opts, rego.ParsedModule(m))
	}
	return opts
}

// store holds the bundle's data files. It keeps them as OPA values, so an
// evaluation that reads a table does not convert it from Go values again.
func (b *bundle) store() storage.Store {
	return inmem.NewFromObjectWithOpts(b.documents, inmem.OptReturnASTValuesOnRead(true))
}

func (b *bundle) prepare(ctx context.Context, query string) (rego.PreparedEvalQuery, error) {
	q, err := rego.New(b.regoOptions(query)...).PrepareForEval(ctx)
	if err != nil {
		return q, fmt.Errorf("load policy: %w", err)
	}
	return q, nil
}

// runTests runs the folder's tests against the bundle; any failure, or no
// test at all, refuses the bundle.
func runTests(ctx context.Context, b *bundle, tests map[string]*ast.Module) error {
	if len(tests) == 0 {
		return fmt.Errorf("load policy: policy.require_tests is on and the folder has no _test.rego files")
	}
	modules := make(map[string]*ast.Module, len(b.modules)+len(tests))
	for i, m := range b.modules {
		modules[fmt.Sprintf("%d:%s", i, moduleFile(m))] = m
	}
	for name, m := range tests {
		modules[name] = m
	}
	ch, err := tester.NewRunner().SetStore(b.store()).SetModules(modules).RunTests(ctx, nil)
	if err != nil {
		return fmt.Errorf("load policy: run tests: %w", err)
	}
	var failed []string
	for r := range ch {
		if !r.Pass() && !r.Skip {
			failed = append(failed, fmt.Sprintf("%s.%s (%s)", r.Package, r.Name, r.Location))
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("load policy: %d test(s) failed: %s", len(failed), strings.Join(failed, ", "))
	}
	return nil
}

func moduleFile(m *ast.Module) string {
	if m.Package != nil && m.Package.Location != nil {
		return m.Package.Location.File
	}
	return "module"
}

// definesRule reports whether package portcullis has a rule of this name.
func definesRule(modules []*ast.Module, name string) bool {
	for _, m := range modules {
		if m.Package.Path.String() != "data.portcullis" {
			continue
		}
		for _, r := range m.Rules {
			if r.Head.Ref().String() == name {
				return true
			}
		}
	}
	return false
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// revisionOf hashes the path and content of every policy and data file
// under dir that the gateway loads; tests do not change a decision, so they
// do not change the revision.
func revisionOf(dir string) (string, error) {
	h := sha256.New()
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !policyFile(path) || strings.HasSuffix(path, "_test.rego") {
			return err
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		fmt.Fprintf(h, "%s\x00%d\x00", filepath.ToSlash(rel), len(src))
		h.Write(src)
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("load policy: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// policyFile reports whether a file is part of a policy folder.
func policyFile(path string) bool {
	switch filepath.Ext(path) {
	case ".rego", ".json", ".yaml", ".yml":
		return true
	}
	return false
}
