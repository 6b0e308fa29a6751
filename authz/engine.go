// Package authz answers "may they do this, and within what limits?": it
// loads and compiles the Rego policies of the policies/ folder once, keeps a
// prepared query for data.portcullis.decision, and turns each call's typed
// Input into a typed Decision. Anything other than a well-formed decision is
// a deny (fail closed).
package authz

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/loader"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// DecisionQuery is the rule the gateway evaluates for every call.
const DecisionQuery = "data.portcullis.decision"

// Engine evaluates the policy. It is safe for concurrent use.
type Engine struct {
	current atomic.Pointer[policy]
}

// policy is one compiled revision of the policy folder.
type policy struct {
	decision rego.PreparedEvalQuery
	revision string
}

// Load compiles the policy folder dir: every .rego file, and every .json
// and .yaml data file as data (a file teams/data.json becomes data.teams),
// the way `opa test` and `portcullis policy test` read it. Tests
// (*_test.rego) are left out. A compile error names the file, line and
// message.
func Load(ctx context.Context, dir string) (*Engine, error) {
	p, err := compile(ctx, dir)
	if err != nil {
		return nil, err
	}
	e := &Engine{}
	e.current.Store(p)
	return e, nil
}

// Revision identifies the policy in force: a hash of its files' paths and
// contents, recorded in every audit record.
func (e *Engine) Revision() string { return e.current.Load().revision }

func compile(ctx context.Context, dir string) (*policy, error) {
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("load policy: %w", err)
	}
	loaded, err := loader.NewFileLoader().
		WithRegoVersion(ast.RegoV1).
		Filtered([]string{dir}, func(_ string, info fs.FileInfo, _ int) bool {
			return !info.IsDir() && strings.HasSuffix(info.Name(), "_test.rego")
		})
	if err != nil {
		return nil, fmt.Errorf("load policy: %w", err)
	}
	if len(loaded.Modules) == 0 {
		return nil, fmt.Errorf("load policy: no .rego files in %s", dir)
	}
	revision, err := revisionOf(dir)
	if err != nil {
		return nil, err
	}
	opts := []func(*rego.Rego){
		rego.Query(DecisionQuery),
		rego.Store(inmem.NewFromObject(loaded.Documents)),
	}
	definesDecision := false
	for _, f := range loaded.Modules {
		if f.Parsed.Package.Path.String() == "data.portcullis" {
			for _, r := range f.Parsed.Rules {
				if r.Head.Ref().String() == "decision" {
					definesDecision = true
				}
			}
		}
		opts = append(opts, rego.ParsedModule(f.Parsed))
	}
	if !definesDecision {
		return nil, fmt.Errorf("load policy: no file in %s defines the rule decision in package portcullis; the gateway queries %s", dir, DecisionQuery)
	}
	prepared, err := rego.New(opts...).PrepareForEval(ctx)
	if err != nil {
		return nil, fmt.Errorf("load policy: %w", err)
	}
	return &policy{decision: prepared, revision: revision}, nil
}

// revisionOf hashes the path and content of every policy and data file
// under dir that the gateway loads; tests do not change a decision, so they
// do not change the revision.
func revisionOf(dir string) (string, error) {
	h := sha256.New()
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		switch ext := filepath.Ext(path); {
		case strings.HasSuffix(path, "_test.rego"):
			return nil
		case ext != ".rego" && ext != ".json" && ext != ".yaml" && ext != ".yml":
			return nil
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

// Decide evaluates the policy for one call. It always returns a usable
// Decision: when evaluation fails or the result is not a well-formed
// decision, the Decision denies, its reason says why, and the error is
// returned too so the caller can audit the cause.
func (e *Engine) Decide(ctx context.Context, in *Input) (Decision, error) {
	p := e.current.Load()
	// Cancel evaluation with the request, without the goroutine per
	// evaluation that OPA starts when left to watch the context itself.
	cancel := topdown.NewCancel()
	stop := context.AfterFunc(ctx, cancel.Cancel)
	defer stop()
	rs, err := p.decision.Eval(ctx, rego.EvalParsedInput(in.value()), rego.EvalExternalCancel(cancel))
	if err != nil {
		return failClosed(p.revision, fmt.Errorf("evaluate policy: %w", err))
	}
	if len(rs) == 0 || len(rs[0].Expressions) == 0 {
		return failClosed(p.revision, errors.New("policy defined no decision for this request; add a default decision"))
	}
	d, err := decodeDecision(rs[0].Expressions[0].Value)
	if err != nil {
		return failClosed(p.revision, fmt.Errorf("policy decision: %w", err))
	}
	d.Revision = p.revision
	return d, nil
}

func failClosed(revision string, err error) (Decision, error) {
	return Decision{Allow: false, Reasons: []string{"denied: " + err.Error()}, Revision: revision}, err
}
