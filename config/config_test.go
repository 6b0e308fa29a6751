package config

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// env returns a lookup function over a fixed set of variables.
func env(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := vars[k]
		return v, ok
	}
}

// minimal is the smallest valid configuration; tests append to it.
const minimal = "audit:\n  stdout: true\n"

func parse(t *testing.T, src string, vars map[string]string) (*Config, error) {
	t.Helper()
	return Parse("/etc/portcullis/config.yaml", []byte(src), env(vars))
}

func mustParse(t *testing.T, src string, vars map[string]string) *Config {
	t.Helper()
	cfg, err := parse(t, src, vars)
	if err != nil {
		t.Fatalf("Parse: %v\nconfig:\n%s", err, src)
	}
	return cfg
}

// fieldErrors returns the problems of a Parse error, failing the test when
// the error is not an *Errors.
func fieldErrors(t *testing.T, err error) []FieldError {
	t.Helper()
	var errs *Errors
	if !errors.As(err, &errs) {
		t.Fatalf("error is %T (%v), want *config.Errors", err, err)
	}
	return errs.List
}

func TestExpandEnv(t *testing.T) {
	vars := map[string]string{"HOST": "example.com", "EMPTY": "", "PORT": "8443"}
	tests := []struct {
		in      string
		want    string
		wantErr string // substring of the error; "" for success
	}{
		{in: "plain", want: "plain"},
		{in: "${HOST}", want: "example.com"},
		{in: "https://${HOST}:${PORT}/v1", want: "https://example.com:8443/v1"},
		{in: "${HOST:-fallback}", want: "example.com"},
		{in: "${UNSET:-fallback}", want: "fallback"},
		{in: "${EMPTY:-fallback}", want: "fallback"},
		{in: "${UNSET:-}", want: ""},
		{in: "${EMPTY}", want: ""},
		{in: "${UNSET:-a:-b}", want: "a:-b"},
		{in: "$${HOST}", want: "${HOST}"},
		{in: "cost: $$5", want: "cost: $5"},
		{in: "$$$$", want: "$$"},
		{in: "price $5", want: "price $5"},
		{in: "trailing $", want: "trailing $"},
		{in: "$HOST", want: "$HOST"},
		{in: "${UNSET}", wantErr: "environment variable UNSET is not set"},
		{in: "a ${HOST} b ${MISSING_TOO}", wantErr: "MISSING_TOO"},
		{in: "${HOST", wantErr: "unclosed"},
		{in: "${}", wantErr: "not a variable reference"},
		{in: "${1ABC}", wantErr: "not a variable reference"},
		{in: "${A-B}", wantErr: "not a variable reference"},
		{in: "${:-x}", wantErr: "not a variable reference"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := expandEnv(tt.in, env(vars))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("expandEnv(%q) = %q, %v; want error containing %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("expandEnv(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

// A variable's value is data: whatever it holds, the document keeps the
// structure written in the file.
func TestParseExpansionKeepsStructure(t *testing.T) {
	src := `providers:
  - name: up
    type: openai
    base_url: https://up.example/v1
    api_key: ${KEY}
    headers:
      X-Note: ${NOTE}
audit:
  file: ${FILE}
`
	tricky := []string{
		"key: value",
		"sk-abc # not a comment",
		"line one\nstdout: true",
		"- item",
		"{stdout: true}",
		"'quoted'",
		"&anchor",
		"*alias",
		"!!bool true",
	}
	for _, v := range tricky {
		t.Run(v, func(t *testing.T) {
			cfg := mustParse(t, src, map[string]string{"KEY": v, "NOTE": v, "FILE": "/var/log/" + v})
			if got := cfg.Providers[0].APIKey.Reveal(); got != v {
				t.Errorf("api_key = %q, want %q", got, v)
			}
			if len(cfg.Providers[0].Headers) != 1 || cfg.Providers[0].Headers["X-Note"].Reveal() != v {
				t.Errorf("headers = %#v, want only X-Note=%q", cfg.Providers[0].Headers, v)
			}
			if cfg.Audit.File != "/var/log/"+v {
				t.Errorf("audit.file = %q, want %q", cfg.Audit.File, "/var/log/"+v)
			}
			if cfg.Audit.Stdout {
				t.Error("audit.stdout became true: a value changed the document's structure")
			}
			if len(cfg.Providers) != 1 {
				t.Errorf("got %d providers, want 1", len(cfg.Providers))
			}
		})
	}
}

func TestParseUnsetVariable(t *testing.T) {
	src := minimal + "providers:\n  - name: up\n    type: openai\n    base_url: ${UPSTREAM_URL}\n"
	_, err := parse(t, src, nil)
	if err == nil {
		t.Fatal("Parse succeeded with an unset ${UPSTREAM_URL}")
	}
	list := fieldErrors(t, err)
	if len(list) != 1 {
		t.Fatalf("got %d problems, want 1: %v", len(list), err)
	}
	fe := list[0]
	if fe.Path != "providers[0].base_url" || fe.Line != 6 || !strings.Contains(fe.Problem, "UPSTREAM_URL") {
		t.Errorf("problem = %+v; want path providers[0].base_url, line 6, naming UPSTREAM_URL", fe)
	}
	if !strings.Contains(err.Error(), "${UPSTREAM_URL:-}") {
		t.Errorf("error %q does not say how to allow an empty value", err)
	}
}

// A plain scalar that held a reference is typed by its expanded value; a
// quoted one stays a string.
func TestParseExpansionRetypesPlainScalars(t *testing.T) {
	src := `server:
  listen: ${LISTEN}
  max_body_bytes: ${SIZE}
  shutdown_grace: ${GRACE}
providers:
  - name: up
    type: openai
    base_url: http://127.0.0.1:9/v1
    api_key: ${NUMERIC_KEY}
auth:
  api_keys:
    - name: k
      hash: sha256:${HEX}
      subject: s
      demo: ${DEMO}
      groups: ["${GROUP}"]
audit:
  stdout: ${STDOUT}
`
	hexHash := strings.Repeat("ab", 32)
	cfg := mustParse(t, src, map[string]string{
		"LISTEN": "0.0.0.0:9000", "SIZE": "2048", "GRACE": "5s", "NUMERIC_KEY": "12345",
		"HEX": hexHash, "DEMO": "true", "GROUP": "123", "STDOUT": "true",
	})
	checks := []struct {
		name      string
		got, want any
	}{
		{"server.listen", cfg.Server.Listen, "0.0.0.0:9000"},
		{"server.max_body_bytes", cfg.Server.MaxBodyBytes, int64(2048)},
		{"server.shutdown_grace", cfg.Server.ShutdownGrace.Std(), 5 * time.Second},
		{"providers[0].api_key", cfg.Providers[0].APIKey.Reveal(), "12345"},
		{"auth.api_keys[0].hash", cfg.Auth.APIKeys[0].Hash, "sha256:" + hexHash},
		{"auth.api_keys[0].demo", cfg.Auth.APIKeys[0].Demo, true},
		{"auth.api_keys[0].groups[0]", cfg.Auth.APIKeys[0].Groups[0], "123"},
		{"audit.stdout", cfg.Audit.Stdout, true},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %#v, want %#v", c.name, c.got, c.want)
		}
	}

	// A quoted reference stays a string, so it cannot fill a number.
	_, err := parse(t, minimal+"server:\n  max_body_bytes: \"${SIZE}\"\n", map[string]string{"SIZE": "2048"})
	if err == nil {
		t.Error("a quoted ${SIZE} decoded into a number; quoting should keep it a string")
	}
}

func TestParseUnknownField(t *testing.T) {
	tests := []struct {
		name     string
		src      string
		wantPath string
		wantLine int
		wantHint string // the suggestion; "" when none is expected
	}{
		{
			name:     "top level typo",
			src:      "servr:\n  listen: :8080\n" + minimal,
			wantPath: "servr", wantLine: 1, wantHint: `did you mean "server"?`,
		},
		{
			name: "second provider",
			src: minimal + `providers:
  - name: a
    type: demo
  - name: b
    type: openai
    baseurl: https://api.openai.com/v1
`,
			wantPath: "providers[1].baseurl", wantLine: 8, wantHint: `did you mean "base_url"?`,
		},
		{
			name:     "api key field",
			src:      minimal + "auth:\n  api_keys:\n    - name: k\n      subjet: s\n",
			wantPath: "auth.api_keys[0].subjet", wantLine: 6, wantHint: `did you mean "subject"?`,
		},
		{
			name:     "nothing close",
			src:      minimal + "server:\n  completely_different: 1\n",
			wantPath: "server.completely_different", wantLine: 4,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parse(t, tt.src, nil)
			if err == nil {
				t.Fatal("Parse accepted an unknown field")
			}
			var found *FieldError
			for _, fe := range fieldErrors(t, err) {
				if fe.Path == tt.wantPath {
					found = &fe
				}
			}
			if found == nil {
				t.Fatalf("no problem at %s in:\n%v", tt.wantPath, err)
			}
			if found.Line != tt.wantLine {
				t.Errorf("line = %d, want %d", found.Line, tt.wantLine)
			}
			if !strings.Contains(found.Problem, "unknown field") {
				t.Errorf("problem %q does not say the field is unknown", found.Problem)
			}
			if tt.wantHint != "" && !strings.Contains(found.Problem, tt.wantHint) {
				t.Errorf("problem %q lacks %q", found.Problem, tt.wantHint)
			}
			if tt.wantHint == "" && strings.Contains(found.Problem, "did you mean") {
				t.Errorf("problem %q suggests a field that is not close", found.Problem)
			}
			msg := err.Error()
			if !strings.Contains(msg, fmt.Sprintf("line %d: %s:", tt.wantLine, tt.wantPath)) {
				t.Errorf("message %q does not carry line and path", msg)
			}
		})
	}
}

func TestParseValidation(t *testing.T) {
	demo := "providers:\n  - name: demo\n    type: demo\n"
	key := func(name, hash string) string {
		return fmt.Sprintf("    - name: %s\n      subject: s\n      hash: %s\n", name, hash)
	}
	goodHash := "sha256:" + strings.Repeat("0a", 32)
	tests := []struct {
		name     string
		src      string
		wantPath string
		wantText []string // substrings of the problem: what is wrong, what is right
	}{
		{
			name:     "bad provider type",
			src:      minimal + "providers:\n  - name: p\n    type: palm\n",
			wantPath: "providers[0].type",
			wantText: []string{`"palm" is not a provider type`, "demo, openai, anthropic, azure, groq, mistral, perplexity, ollama-openai, vllm, gemini, cohere, ollama, bedrock"},
		},
		{
			name:     "bedrock without its regional endpoint",
			src:      minimal + "providers:\n  - name: aws\n    type: bedrock\n    api_key: k\n",
			wantPath: "providers[0].base_url",
			wantText: []string{"is required for bedrock", "bedrock-runtime."},
		},
		{
			name:     "missing provider name",
			src:      minimal + "providers:\n  - type: demo\n",
			wantPath: "providers[0].name",
			wantText: []string{"is required"},
		},
		{
			name:     "duplicate provider names",
			src:      minimal + demo + "  - name: demo\n    type: demo\n",
			wantPath: "providers[1].name",
			wantText: []string{`"demo" is used by another provider`, "unique"},
		},
		{
			name:     "openai without base_url",
			src:      minimal + "providers:\n  - name: p\n    type: openai\n",
			wantPath: "providers[0].base_url",
			wantText: []string{"not an http(s) URL", "https://api.openai.com/v1"},
		},
		{
			name:     "azure without base_url",
			src:      minimal + "providers:\n  - name: p\n    type: azure\n    api_key: k\n",
			wantPath: "providers[0].base_url",
			wantText: []string{"not an http(s) URL"},
		},
		{
			name:     "vllm without base_url",
			src:      minimal + "providers:\n  - name: p\n    type: vllm\n",
			wantPath: "providers[0].base_url",
			wantText: []string{"not an http(s) URL"},
		},
		{
			name:     "api_version on a provider that is not azure",
			src:      minimal + "providers:\n  - name: p\n    type: groq\n    api_version: 2024-10-21\n",
			wantPath: "providers[0].api_version",
			wantText: []string{"only used by azure"},
		},
		{
			name:     "openai with a non-http base_url",
			src:      minimal + "providers:\n  - name: p\n    type: openai\n    base_url: ftp://x/v1\n",
			wantPath: "providers[0].base_url",
			wantText: []string{`"ftp://x/v1"`},
		},
		{
			name:     "demo with an api_key",
			src:      minimal + demo + "    api_key: sk-x\n",
			wantPath: "providers[0]",
			wantText: []string{"takes neither base_url nor api_key"},
		},
		{
			name:     "model on an undeclared provider",
			src:      minimal + demo + "models:\n  - name: gpt\n    provider: openai\n",
			wantPath: "models[0].provider",
			wantText: []string{`"openai" is not a declared provider`, "use one of demo"},
		},
		{
			name:     "model with no providers at all",
			src:      minimal + "models:\n  - name: gpt\n    provider: openai\n",
			wantPath: "models[0].provider",
			wantText: []string{"none declared"},
		},
		{
			name:     "missing model name",
			src:      minimal + demo + "models:\n  - provider: demo\n",
			wantPath: "models[0].name",
			wantText: []string{"is required"},
		},
		{
			name:     "duplicate model names",
			src:      minimal + demo + "models:\n  - name: m\n    provider: demo\n  - name: m\n    provider: demo\n",
			wantPath: "models[1].name",
			wantText: []string{`"m" is declared twice`},
		},
		{
			name:     "hash without prefix",
			src:      minimal + "auth:\n  api_keys:\n" + key("k", strings.Repeat("0a", 32)),
			wantPath: "auth.api_keys[0].hash",
			wantText: []string{`"sha256:" followed by 64 hex digits`, "keys generate"},
		},
		{
			name:     "hash too short",
			src:      minimal + "auth:\n  api_keys:\n" + key("k", "sha256:abcd"),
			wantPath: "auth.api_keys[0].hash",
			wantText: []string{"64 hex digits"},
		},
		{
			name:     "hash not hex",
			src:      minimal + "auth:\n  api_keys:\n" + key("k", "sha256:"+strings.Repeat("zz", 32)),
			wantPath: "auth.api_keys[0].hash",
			wantText: []string{"64 hex digits"},
		},
		{
			name:     "duplicate hashes",
			src:      minimal + "auth:\n  api_keys:\n" + key("a", goodHash) + key("b", goodHash),
			wantPath: "auth.api_keys[1].hash",
			wantText: []string{"same as another key's"},
		},
		{
			name:     "key without subject",
			src:      minimal + "auth:\n  api_keys:\n    - name: k\n      hash: " + goodHash + "\n",
			wantPath: "auth.api_keys[0].subject",
			wantText: []string{"is required"},
		},
		{
			name:     "no audit sink",
			src:      "audit:\n  stdout: false\n",
			wantPath: "audit",
			wantText: []string{"no sink is enabled", "audit.file", "audit.stdout"},
		},
		{
			name:     "bad listen address",
			src:      minimal + "server:\n  listen: localhost\n",
			wantPath: "server.listen",
			wantText: []string{`"localhost" is not host:port`, "127.0.0.1:8080"},
		},
		{
			name:     "bad duration",
			src:      minimal + "server:\n  shutdown_grace: 30 seconds\n",
			wantPath: "server.shutdown_grace",
			wantText: []string{`"30 seconds" is not a duration`, "30s"},
		},
		{
			name:     "bad word delay",
			src:      minimal + demo + "    word_delay: fast\n",
			wantPath: "providers[0].word_delay",
			wantText: []string{`"fast" is not a duration`},
		},
		{
			name:     "negative shutdown grace",
			src:      minimal + "server:\n  shutdown_grace: -1s\n",
			wantPath: "server.shutdown_grace",
			wantText: []string{"must not be negative"},
		},
		{
			name:     "negative read header timeout",
			src:      minimal + "server:\n  read_header_timeout: -10s\n",
			wantPath: "server.read_header_timeout",
			wantText: []string{"must not be negative"},
		},
		{
			name:     "word where a number goes",
			src:      minimal + "server:\n  max_body_bytes: lots\n",
			wantPath: "server.max_body_bytes",
			wantText: []string{`"lots" is not a whole number`},
		},
		{
			name:     "negative body size",
			src:      minimal + "server:\n  max_body_bytes: -1\n",
			wantPath: "server.max_body_bytes",
			wantText: []string{"is negative"},
		},
		{
			name:     "word where a bool goes",
			src:      "audit:\n  stdout: yes please\n",
			wantPath: "audit.stdout",
			wantText: []string{`"yes please" is not true or false`},
		},
		{
			name:     "bad log level",
			src:      minimal + "log:\n  level: verbose\n",
			wantPath: "log.level",
			wantText: []string{`"verbose" is not a level`, "debug, info, warn or error"},
		},
		{
			name:     "providers not a list",
			src:      minimal + "providers: demo\n",
			wantPath: "providers",
			wantText: []string{"expected a list"},
		},
		{
			name:     "headers not a mapping",
			src:      minimal + "providers:\n  - name: p\n    type: openai\n    base_url: http://x\n    headers: [a]\n",
			wantPath: "providers[0].headers",
			wantText: []string{"expected a mapping"},
		},
		{
			name:     "list where a single value goes",
			src:      minimal + "log:\n  level: [info]\n",
			wantPath: "log.level",
			wantText: []string{"expected a single value"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parse(t, tt.src, nil)
			if err == nil {
				t.Fatalf("Parse accepted:\n%s", tt.src)
			}
			var found *FieldError
			for _, fe := range fieldErrors(t, err) {
				if fe.Path == tt.wantPath {
					found = &fe
					break
				}
			}
			if found == nil {
				t.Fatalf("no problem at %s in:\n%v", tt.wantPath, err)
			}
			for _, want := range tt.wantText {
				if !strings.Contains(found.Problem, want) {
					t.Errorf("problem at %s = %q, want it to contain %q", tt.wantPath, found.Problem, want)
				}
			}
			if !strings.HasPrefix(err.Error(), "/etc/portcullis/config.yaml: ") {
				t.Errorf("error %q does not start with the file name", err)
			}
		})
	}
}

// Every problem is reported at once, not just the first.
func TestParseReportsEveryProblem(t *testing.T) {
	src := "server:\n  listen: nope\nlog:\n  level: loud\n"
	_, err := parse(t, src, nil)
	var paths []string
	for _, fe := range fieldErrors(t, err) {
		paths = append(paths, fe.Path)
	}
	want := []string{"server.listen", "log.level", "audit"}
	if strings.Join(paths, " ") != strings.Join(want, " ") {
		t.Errorf("problems at %v, want %v", paths, want)
	}
	// Validation problems carry the line of the field when it was written.
	if list := fieldErrors(t, err); list[0].Line != 2 || list[1].Line != 4 {
		t.Errorf("lines = %d, %d; want 2, 4", list[0].Line, list[1].Line)
	}
}

func TestParseDocumentShape(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"empty", "", "the file is empty"},
		{"only comments", "# nothing here\n", "the file is empty"},
		{"a list", "- a\n- b\n", "(top level): expected a mapping"},
		{"a scalar", "hello\n", "(top level): expected a mapping"},
		{"broken yaml", "server:\n  listen: [\n", "config.yaml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parse(t, tt.src, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Parse(%q) error = %v, want it to contain %q", tt.src, err, tt.want)
			}
		})
	}
}

func TestParseDefaults(t *testing.T) {
	cfg := mustParse(t, minimal+`providers:
  - name: demo
    type: demo
  - name: up
    type: openai
    base_url: http://127.0.0.1:9/v1
models:
  - name: demo
    provider: demo
  - name: fast
    provider: up
    upstream_model: gpt-4o-mini
`, nil)
	checks := []struct {
		name      string
		got, want any
	}{
		{"server.listen", cfg.Server.Listen, DefaultListen},
		{"server.shutdown_grace", cfg.Server.ShutdownGrace.Std(), DefaultShutdownGrace},
		{"server.max_body_bytes", cfg.Server.MaxBodyBytes, int64(DefaultMaxBodyBytes)},
		{"server.read_header_timeout", cfg.Server.ReadHeaderTimeout.Std(), DefaultReadHeaderTimeout},
		{"log.level", cfg.Log.Level, "info"},
		{"policy.dir", cfg.Policy.Dir, "/etc/portcullis/policies"},
		{"providers[0].word_delay", cfg.Providers[0].WordDelay.Std(), DefaultWordDelay},
		{"providers[1].word_delay", cfg.Providers[1].WordDelay.Std(), time.Duration(0)},
		{"models[0].upstream_model", cfg.Models[0].UpstreamModel, "demo"},
		{"models[1].upstream_model", cfg.Models[1].UpstreamModel, "gpt-4o-mini"},
		{"audit.file", cfg.Audit.File, ""},
		{"path", cfg.Path, "/etc/portcullis/config.yaml"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %#v, want %#v", c.name, c.got, c.want)
		}
	}

	// Values written in the file are kept.
	cfg = mustParse(t, minimal+`server:
  listen: 127.0.0.1:9999
  shutdown_grace: 1m30s
  max_body_bytes: 1024
  read_header_timeout: 250ms
log:
  level: debug
providers:
  - name: demo
    type: demo
    word_delay: 1ms
`, nil)
	if cfg.Server.Listen != "127.0.0.1:9999" || cfg.Server.ShutdownGrace.Std() != 90*time.Second ||
		cfg.Server.MaxBodyBytes != 1024 || cfg.Server.ReadHeaderTimeout.Std() != 250*time.Millisecond ||
		cfg.Log.Level != "debug" || cfg.Providers[0].WordDelay.Std() != time.Millisecond {
		t.Errorf("written values not kept: %+v %+v", cfg.Server, cfg.Providers[0])
	}
}

func TestParseResolvesRelativePaths(t *testing.T) {
	tests := []struct {
		name, file, policyDir, auditFile string
		wantPolicy, wantAudit            string
	}{
		{"relative", "/srv/pc/config.yaml", "rules", "logs/audit.log", "/srv/pc/rules", "/srv/pc/logs/audit.log"},
		{"absolute kept", "/srv/pc/config.yaml", "/opt/rules", "/var/log/a.log", "/opt/rules", "/var/log/a.log"},
		{"dot dot", "/srv/pc/config.yaml", "../shared/rules", "a.log", "/srv/shared/rules", "/srv/pc/a.log"},
		{"file in cwd", "config.yaml", "rules", "a.log", "rules", "a.log"},
		{"relative file", "deploy/config.yaml", "rules", "a.log", filepath.Join("deploy", "rules"), filepath.Join("deploy", "a.log")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := fmt.Sprintf("policy:\n  dir: %s\naudit:\n  file: %s\n", tt.policyDir, tt.auditFile)
			cfg, err := Parse(tt.file, []byte(src), env(nil))
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Policy.Dir != tt.wantPolicy || cfg.Audit.File != tt.wantAudit {
				t.Errorf("policy.dir = %q, audit.file = %q; want %q, %q", cfg.Policy.Dir, cfg.Audit.File, tt.wantPolicy, tt.wantAudit)
			}
		})
	}
}

func TestProviderDisabled(t *testing.T) {
	tests := []struct {
		name     string
		provider string
		vars     map[string]string
		want     bool
	}{
		{"no api_key line", "", nil, false},
		{"api_key with a value", "    api_key: sk-1\n", nil, false},
		{"api_key line with nothing", "    api_key:\n", nil, true},
		{"api_key empty string", "    api_key: \"\"\n", nil, true},
		{"api_key from an empty default", "    api_key: ${KEY:-}\n", nil, true},
		{"api_key from a set variable", "    api_key: ${KEY:-}\n", map[string]string{"KEY": "sk-2"}, false},
		{"api_key from a variable set empty", "    api_key: ${KEY}\n", map[string]string{"KEY": ""}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := minimal + "providers:\n  - name: demo\n    type: demo\n  - name: up\n    type: openai\n    base_url: http://127.0.0.1:9/v1\n" + tt.provider
			cfg := mustParse(t, src, tt.vars)
			if off, _ := cfg.ProviderDisabled(0); off {
				t.Error("the demo provider is disabled")
			}
			off, why := cfg.ProviderDisabled(1)
			if off != tt.want {
				t.Fatalf("ProviderDisabled(1) = %v, want %v", off, tt.want)
			}
			if off && why != "providers[1].api_key is empty" {
				t.Errorf("reason = %q, want it to name providers[1].api_key", why)
			}
			if !off && why != "" {
				t.Errorf("reason = %q for an enabled provider", why)
			}
		})
	}
}

func TestLoopbackListen(t *testing.T) {
	tests := []struct {
		listen string
		want   bool
	}{
		{"127.0.0.1:8080", true},
		{"127.1.2.3:8080", true},
		{"localhost:8080", true},
		{"[::1]:8080", true},
		{":8080", false},
		{"0.0.0.0:8080", false},
		{"[::]:8080", false},
		{"192.168.1.10:8080", false},
		{"example.com:8080", false},
		{"not-an-address", false},
	}
	for _, tt := range tests {
		t.Run(tt.listen, func(t *testing.T) {
			c := &Config{Server: Server{Listen: tt.listen}}
			if got := c.LoopbackListen(); got != tt.want {
				t.Errorf("LoopbackListen(%q) = %v, want %v", tt.listen, got, tt.want)
			}
		})
	}
}

func TestSecretNeverPrints(t *testing.T) {
	const value = "sk-live-0123456789"
	s := Secret(value)
	p := Provider{Name: "up", APIKey: s, Headers: map[string]Secret{"X-Key": s}}
	outputs := map[string]string{
		"%v":         fmt.Sprintf("%v", s),
		"%s":         fmt.Sprintf("%s", s),
		"%#v":        fmt.Sprintf("%#v", s),
		"%q":         fmt.Sprintf("%q", s),
		"%+v":        fmt.Sprintf("%+v", s),
		"struct %v":  fmt.Sprintf("%v", p),
		"struct %+v": fmt.Sprintf("%+v", p),
		"struct %#v": fmt.Sprintf("%#v", p),
		"Println":    fmt.Sprintln(s, p),
	}
	j, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	outputs["json"] = string(j)
	y, err := yaml.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	outputs["yaml"] = string(y)
	for name, out := range outputs {
		if strings.Contains(out, value) {
			t.Errorf("%s prints the secret: %s", name, out)
		}
		if !strings.Contains(out, "[redacted]") {
			t.Errorf("%s does not show [redacted]: %s", name, out)
		}
	}
	if s.Reveal() != value {
		t.Errorf("Reveal() = %q, want the value", s.Reveal())
	}
	if Secret("").String() != "" {
		t.Errorf("an empty secret prints %q, want nothing", Secret("").String())
	}
}

func TestDurationUnmarshalText(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"30s", 30 * time.Second, true},
		{"1m30s", 90 * time.Second, true},
		{"250ms", 250 * time.Millisecond, true},
		{"0", 0, true},
		{"30", 0, false},
		{"", 0, false},
		{"soon", 0, false},
	}
	for _, tt := range tests {
		var d Duration
		err := d.UnmarshalText([]byte(tt.in))
		if (err == nil) != tt.ok || d.Std() != tt.want {
			t.Errorf("UnmarshalText(%q) = %v, %v; want %v, ok=%v", tt.in, d.Std(), err, tt.want, tt.ok)
		}
	}
}

// The repository's own example configuration must keep loading.
func TestLoadExampleConfig(t *testing.T) {
	for _, k := range []string{"PORTCULLIS_LISTEN", "PORTCULLIS_AUDIT_FILE", "OPENAI_API_KEY"} {
		t.Setenv(k, "")
	}
	cfg, err := Load("../config.example.yaml")
	if err != nil {
		t.Fatalf("Load(config.example.yaml): %v", err)
	}
	if cfg.Server.Listen != "127.0.0.1:8080" || !cfg.LoopbackListen() {
		t.Errorf("listen = %q, want the loopback default", cfg.Server.Listen)
	}
	dir, _ := filepath.Abs("..")
	if got, _ := filepath.Abs(cfg.Policy.Dir); got != filepath.Join(dir, "policies") {
		t.Errorf("policy.dir = %q, want the repository's policies folder", cfg.Policy.Dir)
	}
	if filepath.Base(cfg.Audit.File) != "portcullis-audit.log" {
		t.Errorf("audit.file = %q", cfg.Audit.File)
	}
	names := map[string]int{}
	for i, p := range cfg.Providers {
		names[p.Name] = i
	}
	if off, _ := cfg.ProviderDisabled(names["openai"]); !off {
		t.Error("the openai provider is enabled with OPENAI_API_KEY empty")
	}
	if off, _ := cfg.ProviderDisabled(names["demo"]); off {
		t.Error("the demo provider is disabled")
	}
	// The published demo key's hash matches the key the comment names.
	sum := sha256.Sum256([]byte("pcx_demo_not_a_secret"))
	if len(cfg.Auth.APIKeys) == 0 || cfg.Auth.APIKeys[0].Hash != HashPrefix+hex.EncodeToString(sum[:]) || !cfg.Auth.APIKeys[0].Demo {
		t.Errorf("demo key = %+v, want the hash of pcx_demo_not_a_secret marked demo", cfg.Auth.APIKeys)
	}

	t.Setenv("OPENAI_API_KEY", "sk-test")
	t.Setenv("PORTCULLIS_LISTEN", "0.0.0.0:9090")
	cfg, err = Load("../config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if off, _ := cfg.ProviderDisabled(names["openai"]); off || cfg.Providers[names["openai"]].APIKey.Reveal() != "sk-test" {
		t.Error("OPENAI_API_KEY did not reach the openai provider")
	}
	if cfg.Server.Listen != "0.0.0.0:9090" || cfg.LoopbackListen() {
		t.Errorf("listen = %q, want PORTCULLIS_LISTEN", cfg.Server.Listen)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "absent.yaml"))
	if err == nil || !strings.Contains(err.Error(), "read config") {
		t.Fatalf("Load of a missing file: %v", err)
	}
}

// A section written with nothing under it is the same as an absent one.
func TestParseEmptySections(t *testing.T) {
	src := minimal + `server:
log:
providers:
  - name: up
    type: openai
    base_url: http://127.0.0.1:9/v1
    headers:
models:
auth:
  api_keys:
policy:
`
	cfg := mustParse(t, src, nil)
	if cfg.Server.Listen != DefaultListen || len(cfg.Providers[0].Headers) != 0 || len(cfg.Models) != 0 {
		t.Errorf("empty sections did not decode as absent ones: %+v", cfg)
	}
}

// An anthropic provider needs no base_url: it defaults to Anthropic's API.
func TestAnthropicProviderDefaultsItsBaseURL(t *testing.T) {
	src := "audit:\n  stdout: true\nproviders:\n  - name: claude\n    type: anthropic\n    api_key: sk-ant-test\nmodels:\n  - name: claude\n    provider: claude\n"
	cfg, err := Parse("config.yaml", []byte(src), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Providers[0].BaseURL; got != DefaultAnthropicBaseURL {
		t.Errorf("base_url = %q, want %q", got, DefaultAnthropicBaseURL)
	}
}

// The OpenAI-compatible types with a public API default their base_url,
// and azure its api_version.
func TestCompatProviderDefaults(t *testing.T) {
	for _, tt := range []struct {
		typ, extra, baseURL, apiVersion string
	}{
		{"groq", "", "https://api.groq.com/openai/v1", ""},
		{"mistral", "", "https://api.mistral.ai/v1", ""},
		{"perplexity", "", "https://api.perplexity.ai", ""},
		{"ollama-openai", "", "http://localhost:11434/v1", ""},
		{"ollama-openai", "    base_url: http://gpu-box:11434/v1\n", "http://gpu-box:11434/v1", ""},
		{"azure", "    base_url: https://r.openai.azure.com\n", "https://r.openai.azure.com", DefaultAzureAPIVersion},
		{"azure", "    base_url: https://r.openai.azure.com\n    api_version: 2025-04-01-preview\n", "https://r.openai.azure.com", "2025-04-01-preview"},
	} {
		src := "audit:\n  stdout: true\nproviders:\n  - name: p\n    type: " + tt.typ + "\n" + tt.extra + "models:\n  - name: m\n    provider: p\n"
		cfg, err := Parse("config.yaml", []byte(src), func(string) (string, bool) { return "", false })
		if err != nil {
			t.Fatalf("%s: %v", tt.typ, err)
		}
		if p := cfg.Providers[0]; p.BaseURL != tt.baseURL || p.APIVersion != tt.apiVersion {
			t.Errorf("%s: base_url %q api_version %q, want %q %q", tt.typ, p.BaseURL, p.APIVersion, tt.baseURL, tt.apiVersion)
		}
	}
}

// The native providers need no base_url either; a local Ollama needs no key.
func TestNativeProvidersDefaultTheirBaseURL(t *testing.T) {
	for typ, want := range map[string]string{
		"gemini": "https://generativelanguage.googleapis.com/v1beta",
		"cohere": "https://api.cohere.com",
		"ollama": "http://localhost:11434",
	} {
		key := "    api_key: k\n"
		if typ == "ollama" {
			key = ""
		}
		src := "audit:\n  stdout: true\nproviders:\n  - name: p\n    type: " + typ + "\n" + key + "models:\n  - name: m\n    provider: p\n"
		cfg, err := Parse("config.yaml", []byte(src), func(string) (string, bool) { return "", false })
		if err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
		if got := cfg.Providers[0].BaseURL; got != want {
			t.Errorf("%s: base_url = %q, want %q", typ, got, want)
		}
		if off, why := cfg.ProviderDisabled(0); off {
			t.Errorf("%s: disabled: %s", typ, why)
		}
	}
}

// The commented native-provider examples of config.example.yaml (and the
// models that name them) load once uncommented, with every other
// commented provider.
func TestExampleNativeProviders(t *testing.T) {
	src, err := os.ReadFile("../config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	entry := regexp.MustCompile(`^  # (- name: |  (type|api_key|base_url|provider|upstream_model): )`)
	var lines []string
	for _, l := range strings.Split(string(src), "\n") {
		if entry.MatchString(l) {
			l = "  " + strings.TrimPrefix(l, "  # ")
		}
		lines = append(lines, l)
	}
	env := map[string]string{"GEMINI_API_KEY": "g", "COHERE_API_KEY": "c", "AWS_BEARER_TOKEN_BEDROCK": "b"}
	cfg := mustParse(t, strings.Join(lines, "\n"), env)
	types := map[string]string{}
	for i, p := range cfg.Providers {
		if off, why := cfg.ProviderDisabled(i); off && slices.Contains([]string{"gemini", "cohere", "ollama", "bedrock"}, p.Type) {
			t.Errorf("provider %s disabled: %s", p.Name, why)
		}
		types[p.Type] = p.BaseURL
	}
	for _, typ := range []string{"gemini", "cohere", "ollama", "bedrock"} {
		if types[typ] == "" {
			t.Errorf("no %s provider in the uncommented example (providers %v)", typ, types)
		}
	}
	served := map[string]bool{}
	for _, m := range cfg.Models {
		served[m.Provider] = true
	}
	for _, name := range []string{"google", "cohere", "ollama-native", "bedrock"} {
		if !served[name] {
			t.Errorf("no example model on provider %s", name)
		}
	}
}
