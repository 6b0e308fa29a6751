package authz

import (
	"context"
	"fmt"
	"sort"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/loader"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// Evaluation is the outcome of deciding one input document, for the
// security team's tooling (`portcullis policy eval`).
type Evaluation struct {
	// Decision is what the gateway would do with the input.
	Decision Decision
	// Err says why the decision fails closed, if it does.
	Err error
	// Raw is the value of data.portcullis.decision as the policy wrote it;
	// nil when undefined.
	Raw any
	// Fired lists the rules that produced a value, in source order; it is
	// filled only when explaining.
	Fired []FiredRule
}

// FiredRule is a rule that produced a value during an evaluation.
type FiredRule struct {
	// Rule is the rule's name, such as data.portcullis.model_allowed.
	Rule string
	// Location is file:line of the rule.
	Location string

	file string
	row  int
}

// Evaluate decides a raw input document (as JSON decodes it) with the policy
// in force, as the gateway would. With explain, it also records which rules
// fired, which costs a trace and is never done on the request path.
func (e *Engine) Evaluate(ctx context.Context, input any, explain bool) (Evaluation, error) {
	b := e.current.Load()
	opts := append(b.regoOptions(DecisionQuery), rego.Input(input))
	tracer := topdown.NewBufferTracer()
	if explain {
		opts = append(opts, rego.QueryTracer(tracer))
	}
	rs, err := rego.New(opts...).Eval(ctx)
	var ev Evaluation
	switch {
	case err != nil:
		ev.Decision, ev.Err = failClosed(b.revision, fmt.Errorf("evaluate policy: %w", err))
	case len(rs) == 0 || len(rs[0].Expressions) == 0:
		ev.Decision, ev.Err = failClosed(b.revision, fmt.Errorf("policy defined no decision for this input"))
	default:
		ev.Raw = rs[0].Expressions[0].Value
		ev.Decision, ev.Err = decodeDecision(ev.Raw)
		if ev.Err != nil {
			ev.Decision, _ = failClosed(b.revision, fmt.Errorf("policy decision: %w", ev.Err))
		}
		ev.Decision.Revision = b.revision
	}
	if explain {
		ev.Fired = firedRules(*tracer)
	}
	return ev, nil
}

// firedRules reads the rules that exited with a value from a trace.
func firedRules(trace []*topdown.Event) []FiredRule {
	seen := map[string]bool{}
	var fired []FiredRule
	for _, ev := range trace {
		rule, ok := ev.Node.(*ast.Rule)
		if ev.Op != topdown.ExitOp || !ok || rule.Location == nil {
			continue
		}
		loc := fmt.Sprintf("%s:%d", rule.Location.File, rule.Location.Row)
		if seen[loc] {
			continue
		}
		seen[loc] = true
		fired = append(fired, FiredRule{Rule: rule.Module.Package.Path.String() + "." + rule.Head.Ref().String(), Location: loc, file: rule.Location.File, row: rule.Location.Row})
	}
	sort.SliceStable(fired, func(i, j int) bool {
		if fired[i].file != fired[j].file {
			return fired[i].file < fired[j].file
		}
		return fired[i].row < fired[j].row
	})
	return fired
}

// Check compiles the policy folder in OPA's strict mode (unused variables
// and imports, shadowed names, deprecated built-ins are errors), tests
// included, and returns every problem found.
func Check(dir string) error {
	loaded, err := loader.NewFileLoader().WithRegoVersion(ast.RegoV1).All([]string{dir})
	if err != nil {
		return fmt.Errorf("check policy: %w", err)
	}
	modules := make(map[string]*ast.Module, len(loaded.Modules))
	for name, f := range loaded.Modules {
		modules[name] = f.Parsed
	}
	if len(modules) == 0 {
		return fmt.Errorf("check policy: no .rego files in %s", dir)
	}
	c := ast.NewCompiler().WithStrict(true)
	if c.Compile(modules); c.Failed() {
		return fmt.Errorf("check policy: %w", c.Errors)
	}
	return nil
}
