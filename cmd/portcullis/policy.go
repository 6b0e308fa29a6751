package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/open-policy-agent/opa/v1/tester"

	"portcullis/authz"
)

// policyTest runs the Rego tests of a policy folder with the embedded OPA.
func policyTest(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("policy test", stderr)
	if err := fs.Parse(args); err != nil {
		return err
	}
	dirs := fs.Args()
	if len(dirs) == 0 {
		dirs = []string{"policies"}
	}
	modules, store, err := tester.Load(dirs, nil)
	if err != nil {
		return fmt.Errorf("policy test: %w", err)
	}
	ch, err := tester.NewRunner().SetStore(store).CapturePrintOutput(true).SetModules(modules).RunTests(context.Background(), nil)
	if err != nil {
		return fmt.Errorf("policy test: %w", err)
	}
	var results []*tester.Result
	for r := range ch {
		results = append(results, r)
	}
	sort.Slice(results, func(i, j int) bool {
		a, b := results[i].Location, results[j].Location
		if a.File != b.File {
			return a.File < b.File
		}
		return a.Row < b.Row
	})
	passed, failed := 0, 0
	for _, r := range results {
		switch {
		case r.Pass():
			passed++
			fmt.Fprintf(stdout, "PASS %s.%s\n", r.Package, r.Name)
		case r.Skip:
			fmt.Fprintf(stdout, "SKIP %s.%s\n", r.Package, r.Name)
		default:
			failed++
			fmt.Fprintf(stdout, "FAIL %s.%s (%s)\n", r.Package, r.Name, r.Location)
			if r.Error != nil {
				fmt.Fprintf(stdout, "     %v\n", r.Error)
			}
			if len(r.Output) > 0 {
				fmt.Fprintf(stdout, "     output:\n%s", indent(string(r.Output), "       "))
			}
		}
	}
	fmt.Fprintf(stdout, "policy: %d passed, %d failed\n", passed, failed)
	switch {
	case failed > 0:
		return fmt.Errorf("policy test: %d of %d tests failed", failed, passed+failed)
	case passed == 0:
		return fmt.Errorf("policy test: no tests found in %s", strings.Join(dirs, ", "))
	}
	return nil
}

func indent(s, prefix string) string {
	lines := strings.SplitAfter(strings.TrimRight(s, "\n"), "\n")
	return prefix + strings.Join(lines, prefix) + "\n"
}

// policyEval prints the decision the policy in DIR makes for an input
// document, and with --explain the rules that fired.
func policyEval(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("policy eval", stderr)
	inputPath := fs.String("input", "", "input document `file` (JSON), as docs/policy.md describes")
	explain := fs.Bool("explain", false, "also list the rules that fired")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *inputPath == "" {
		return errors.New("policy eval: --input FILE is required")
	}
	dir := "policies"
	if fs.NArg() > 0 {
		dir = fs.Arg(0)
	}
	raw, err := os.ReadFile(*inputPath)
	if err != nil {
		return fmt.Errorf("policy eval: %w", err)
	}
	var input any
	if err := json.Unmarshal(raw, &input); err != nil {
		return fmt.Errorf("policy eval: %s is not JSON: %w", *inputPath, err)
	}
	ctx := context.Background()
	engine, err := authz.Load(ctx, dir)
	if err != nil {
		return err
	}
	ev, err := engine.Evaluate(ctx, input, *explain)
	if err != nil {
		return err
	}
	out, _ := json.MarshalIndent(ev.Raw, "", "  ")
	fmt.Fprintf(stdout, "decision (revision %s):\n%s\n", ev.Decision.Revision, out)
	if ev.Err != nil {
		fmt.Fprintf(stdout, "the gateway would deny: %v\n", ev.Err)
	} else if ev.Decision.Allow {
		fmt.Fprintln(stdout, "the gateway would allow")
	} else {
		fmt.Fprintf(stdout, "the gateway would deny: %s\n", strings.Join(ev.Decision.Reasons, "; "))
	}
	if *explain {
		fmt.Fprintln(stdout, "rules that fired:")
		for _, r := range ev.Fired {
			fmt.Fprintf(stdout, "  %s  (%s)\n", r.Rule, r.Location)
		}
	}
	return nil
}

// policyCheck compiles a policy folder in strict mode.
func policyCheck(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("policy check", stderr)
	if err := fs.Parse(args); err != nil {
		return err
	}
	dir := "policies"
	if fs.NArg() > 0 {
		dir = fs.Arg(0)
	}
	if err := authz.Check(dir); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: ok (strict mode)\n", dir)
	return nil
}
