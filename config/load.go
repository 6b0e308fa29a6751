package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// Load reads, expands, decodes and validates the configuration file at path.
// The error, when there is one, lists every problem found, each with the
// file, line and field path.
func Load(path string) (*Config, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(path, src, os.LookupEnv)
}

// Parse is Load for a file already read; lookup resolves ${VAR} references.
func Parse(path string, src []byte, lookup func(string) (string, bool)) (*Config, error) {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(src))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &Errors{File: path, List: []FieldError{{Path: "(file)", Problem: "the file is empty; start from config.example.yaml"}}}
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	l := &loader{file: path, lookup: lookup, declared: map[string]bool{}, lines: map[string]int{}}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	l.expand(root, "")
	l.check(root, reflect.TypeOf(Config{}), "")
	if len(l.errs) > 0 {
		return nil, &Errors{File: path, List: l.errs}
	}
	var cfg Config
	if err := root.Decode(&cfg); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	cfg.Path = path
	for i := range cfg.Providers {
		cfg.Providers[i].keyDeclared = l.declared[fmt.Sprintf("providers[%d].api_key", i)]
	}
	cfg.applyDefaults()
	if errs := cfg.validate(l); len(errs) > 0 {
		return nil, &Errors{File: path, List: errs}
	}
	cfg.resolvePaths()
	return &cfg, nil
}

// FieldError is one problem in the configuration.
type FieldError struct {
	Line    int
	Path    string
	Problem string
}

// Errors lists every problem found in one file.
type Errors struct {
	File string
	List []FieldError
}

func (e *Errors) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d problem(s):", e.File, len(e.List))
	for _, fe := range e.List {
		b.WriteString("\n  ")
		if fe.Line > 0 {
			fmt.Fprintf(&b, "line %d: ", fe.Line)
		}
		fmt.Fprintf(&b, "%s: %s", fe.Path, fe.Problem)
	}
	return b.String()
}

// loader carries the state of one Parse: the line of every field path seen,
// which fields were written in the file, and the problems found.
type loader struct {
	file     string
	lookup   func(string) (string, bool)
	declared map[string]bool
	lines    map[string]int
	errs     []FieldError
}

func (l *loader) fail(path, format string, args ...any) {
	l.errs = append(l.errs, FieldError{Line: l.lines[path], Path: path, Problem: fmt.Sprintf(format, args...)})
}

// expand replaces ${VAR} and ${VAR:-default} in every scalar value. It works
// on parsed scalars, not on the raw text, so a value can never change the
// structure of the document. A plain scalar that held a reference is
// re-typed after expansion, so `port: ${PORT}` still decodes as a number.
func (l *loader) expand(n *yaml.Node, path string) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			key := n.Content[i].Value
			l.expand(n.Content[i+1], joinPath(path, key))
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			l.expand(c, fmt.Sprintf("%s[%d]", path, i))
		}
	case yaml.ScalarNode:
		if !strings.Contains(n.Value, "$") {
			return
		}
		v, err := expandEnv(n.Value, l.lookup)
		if err != nil {
			l.errs = append(l.errs, FieldError{Line: n.Line, Path: path, Problem: err.Error()})
			return
		}
		n.Value = v
		if n.Style == 0 {
			n.Tag = ""
			if v == "" {
				n.Tag = "!!str"
			}
		}
	}
}

// expandEnv expands ${VAR} and ${VAR:-default}; $$ is a literal dollar.
// A ${VAR} whose variable is unset is an error, so a typo cannot silently
// become an empty value; ${VAR:-} opts into an empty default.
func expandEnv(s string, lookup func(string) (string, bool)) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '$' {
			b.WriteByte(c)
			continue
		}
		if i+1 < len(s) && s[i+1] == '$' {
			b.WriteByte('$')
			i++
			continue
		}
		if i+1 >= len(s) || s[i+1] != '{' {
			b.WriteByte(c)
			continue
		}
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			return "", fmt.Errorf("unclosed %q; write ${VAR} or ${VAR:-default}", s[i:])
		}
		ref := s[i+2 : i+end]
		name, def, hasDef := strings.Cut(ref, ":-")
		if !validEnvName(name) {
			return "", fmt.Errorf("%q is not a variable reference; write ${VAR} or ${VAR:-default} with VAR made of letters, digits and _", s[i:i+end+1])
		}
		v, ok := lookup(name)
		switch {
		case ok && (v != "" || !hasDef):
			b.WriteString(v)
		case hasDef:
			b.WriteString(def)
		default:
			return "", fmt.Errorf("environment variable %s is not set; set it, or write ${%s:-} to allow an empty value", name, name)
		}
		i += end
	}
	return b.String(), nil
}

func validEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		switch {
		case r == '_', r >= 'A' && r <= 'Z', r >= 'a' && r <= 'z':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// check walks the document beside the Go type it will decode into, records
// the line of every field, and reports keys the type does not have.
func (l *loader) check(n *yaml.Node, t reflect.Type, path string) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if path != "" {
		l.lines[path] = n.Line
		l.declared[path] = true
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
				return
			}
			l.fail(pathOr(path), "expected a mapping of fields (%s)", strings.Join(fieldNames(t), ", "))
			return
		}
		fields := yamlFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := joinPath(path, k.Value)
			ft, ok := fields[k.Value]
			if !ok {
				l.lines[p] = k.Line
				l.fail(p, "unknown field%s; the fields here are %s", suggest(k.Value, fieldNames(t)), strings.Join(fieldNames(t), ", "))
				continue
			}
			l.check(v, ft, p)
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
				return
			}
			l.fail(pathOr(path), "expected a list (one \"- item\" per line)")
			return
		}
		for i, c := range n.Content {
			l.check(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i))
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
				return
			}
			l.fail(pathOr(path), "expected a mapping of names to values")
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			l.check(n.Content[i+1], t.Elem(), joinPath(path, n.Content[i].Value))
		}
	default:
		// Decode a single value here, so that a wrong one (a bad duration,
		// a word where a number goes) is reported with its path and line.
		if err := n.Decode(reflect.New(t).Interface()); err != nil {
			l.fail(pathOr(path), "%s", valueProblem(n, t, err))
		}
	}
}

// valueProblem says what is wrong with a single value and what would be right.
func valueProblem(n *yaml.Node, t reflect.Type, err error) string {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return err.Error() // from UnmarshalText, which already says what to write
	}
	if n.Kind != yaml.ScalarNode {
		return "expected a single value, not a list or mapping"
	}
	switch t.Kind() {
	case reflect.Bool:
		return fmt.Sprintf("%q is not true or false", n.Value)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return fmt.Sprintf("%q is not a whole number", n.Value)
	}
	return fmt.Sprintf("%q is not a valid %s", n.Value, t.Kind())
}

func yamlFields(t reflect.Type) map[string]reflect.Type {
	m := make(map[string]reflect.Type, t.NumField())
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if opts == "inline" && f.Type.Kind() == reflect.Struct {
			maps.Copy(m, yamlFields(f.Type))
			continue
		}
		if name == "" || name == "-" {
			continue
		}
		m[name] = f.Type
	}
	return m
}

func fieldNames(t reflect.Type) []string {
	var names []string
	for name := range yamlFields(t) {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// suggest names the closest known field when the unknown one looks like a typo.
func suggest(got string, known []string) string {
	best, bestDist := "", 3
	for _, k := range known {
		if d := editDistance(got, k); d < bestDist {
			best, bestDist = k, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func joinPath(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

func pathOr(p string) string {
	if p == "" {
		return "(top level)"
	}
	return p
}

// resolvePaths makes relative file paths relative to the config file's folder,
// so the gateway finds its policies wherever it is started from.
func (c *Config) resolvePaths() {
	dir := filepath.Dir(c.Path)
	abs := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(dir, p)
	}
	c.Policy.Dir = abs(c.Policy.Dir)
	c.Audit.File = abs(c.Audit.File)
	c.Usage.File = abs(c.Usage.File)
	for i := range c.Audit.Sinks {
		c.Audit.Sinks[i].Path = abs(c.Audit.Sinks[i].Path)
	}
}
