// Package authz answers "may they do this, and within what limits?": it
// loads and compiles the policy folder (Rego files and data files), keeps
// prepared queries for data.portcullis.decision and data.portcullis.models,
// and turns each call's typed Input into a typed Decision. Anything other
// than a well-formed decision is a deny (fail closed). The folder can be
// reloaded while the gateway serves; a folder that fails to load leaves the
// previous policy in force.
package authz

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// Engine evaluates the policy. It is safe for concurrent use; a reload
// swaps the whole bundle at once, so every call is decided by one revision.
type Engine struct {
	dir          string
	requireTests bool
	current      atomic.Pointer[bundle]

	mu     sync.Mutex // serialises reloads and guards status
	status Status
}

// Options configure an Engine.
type Options struct {
	// Dir is the policy folder.
	Dir string
	// RequireTests makes every load run the folder's _test.rego tests and
	// refuse a bundle whose tests fail.
	RequireTests bool
}

// Status describes the policy in force and the last reload.
type Status struct {
	Revision string    `json:"revision"`
	LoadedAt time.Time `json:"loaded_at"`
	// Reloads and Failures count reload attempts since start.
	Reloads  int `json:"reloads"`
	Failures int `json:"failures"`
	// LastError is the last failed reload's error, cleared by a success.
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
}

// New loads the policy folder. A compile error names the file, line and
// message.
func New(ctx context.Context, o Options) (*Engine, error) {
	b, err := loadBundle(ctx, o.Dir, o.RequireTests)
	if err != nil {
		return nil, err
	}
	e := &Engine{dir: o.Dir, requireTests: o.RequireTests}
	e.current.Store(b)
	e.status = Status{Revision: b.revision, LoadedAt: time.Now()}
	return e, nil
}

// Load is New with default options.
func Load(ctx context.Context, dir string) (*Engine, error) {
	return New(ctx, Options{Dir: dir})
}

// Revision identifies the policy in force: a hash of its files' paths and
// contents, recorded in every audit record.
func (e *Engine) Revision() string { return e.current.Load().revision }

// Status reports the policy in force and the outcome of the last reload.
func (e *Engine) Status() Status {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.status
}

// Reload reads the folder again and, when it compiles (and its tests pass,
// if required), puts it in force. On failure the previous policy stays in
// force and the error, naming file and line, is returned and kept in Status.
// It reports whether the revision changed.
func (e *Engine) Reload(ctx context.Context) (changed bool, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.status.Reloads++
	b, err := loadBundle(ctx, e.dir, e.requireTests)
	if err != nil {
		e.status.Failures++
		e.status.LastError, e.status.LastErrorAt = err.Error(), time.Now()
		return false, err
	}
	e.status.LastError, e.status.LastErrorAt = "", time.Time{}
	if b.revision == e.current.Load().revision {
		return false, nil
	}
	e.current.Store(b)
	e.status.Revision, e.status.LoadedAt = b.revision, time.Now()
	return true, nil
}

// Decide evaluates the policy for one call. It always returns a usable
// Decision: when evaluation fails or the result is not a well-formed
// decision, the Decision denies, its reason says why, and the error is
// returned too so the caller can audit the cause.
func (e *Engine) Decide(ctx context.Context, in *Input) (Decision, error) {
	b := e.current.Load()
	return b.decide(ctx, in)
}

func (b *bundle) decide(ctx context.Context, in *Input) (Decision, error) {
	var key [32]byte
	if b.decisions != nil {
		key = in.key()
		if d, ok := b.decisions.lru.Get(key); ok {
			return d, nil
		}
	}
	d, err := b.evaluate(ctx, in)
	if err == nil && b.decisions != nil {
		b.decisions.lru.Add(key, d)
	}
	return d, err
}

// evaluate runs the decision query; only well-formed decisions are
// remembered, never a failure (a cancelled call, say).
func (b *bundle) evaluate(ctx context.Context, in *Input) (Decision, error) {
	rs, err := eval(ctx, &b.decision, in)
	if err != nil {
		return failClosed(b.revision, fmt.Errorf("evaluate policy: %w", err))
	}
	if len(rs) == 0 || len(rs[0].Expressions) == 0 {
		return failClosed(b.revision, errors.New("policy defined no decision for this request; add a default decision"))
	}
	d, err := decodeDecision(rs[0].Expressions[0].Value)
	if err != nil {
		return failClosed(b.revision, fmt.Errorf("policy decision: %w", err))
	}
	d.Revision = b.revision
	return d, nil
}

// eval runs a prepared query. It cancels evaluation with the request,
// without the goroutine per evaluation that OPA starts when left to watch
// the context itself.
func eval(ctx context.Context, q *rego.PreparedEvalQuery, in *Input) (rego.ResultSet, error) {
	cancel := topdown.NewCancel()
	stop := context.AfterFunc(ctx, cancel.Cancel)
	defer stop()
	return q.Eval(ctx, rego.EvalParsedInput(in.value()), rego.EvalExternalCancel(cancel))
}

func failClosed(revision string, err error) (Decision, error) {
	return Decision{Allow: false, Reasons: []string{"denied: " + err.Error()}, Revision: revision}, err
}

// Models returns which of the candidate model names the caller may see,
// in the candidates' order. With a models rule in the policy, it is the
// rule's answer (input.models holds the candidates); without one, the
// models whose decision (with request.api "models") allows. An evaluation
// error shows nothing and is returned.
func (e *Engine) Models(ctx context.Context, in *Input, candidates []string) ([]string, error) {
	b := e.current.Load()
	if b.models == nil {
		var visible []string
		for _, m := range candidates {
			probe := *in
			probe.Request.Model = m
			if d, err := b.decide(ctx, &probe); err == nil && d.Allow {
				visible = append(visible, m)
			}
		}
		return visible, nil
	}
	withModels := *in
	withModels.Models = candidates
	rs, err := eval(ctx, b.models, &withModels)
	if err != nil {
		return nil, fmt.Errorf("evaluate %s: %w", ModelsQuery, err)
	}
	if len(rs) == 0 || len(rs[0].Expressions) == 0 {
		return nil, fmt.Errorf("%s is undefined for this caller; give it a default such as `default models := set()`", ModelsQuery)
	}
	allowed, err := decodeStrings(ModelsQuery, rs[0].Expressions[0].Value)
	if err != nil {
		return nil, err
	}
	set := make(map[string]bool, len(allowed))
	for _, m := range allowed {
		set[m] = true
	}
	var visible []string
	for _, m := range candidates {
		if set[m] {
			visible = append(visible, m)
		}
	}
	return visible, nil
}
