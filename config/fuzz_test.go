package config

import "testing"

// FuzzParse feeds arbitrary documents to Parse: it must return a config or
// an error, never panic, and a config it returns has its defaults applied.
func FuzzParse(f *testing.F) {
	// Seeds stay small: the fuzzer minimizes every new input it finds, and
	// minimizing a large one can take the whole of a short run.
	seeds := []string{
		`server: {listen: "127.0.0.1:0", shutdown_grace: 1s, max_body_bytes: 1, read_header_timeout: 1s}
log: {level: warn}
providers:
  - {name: d, type: demo, word_delay: 1ms}
  - {name: o, type: openai, base_url: "http://127.0.0.1:1/v1", api_key: "${KEY:-}", headers: {X-A: b}}
models: [{name: d, provider: d}, {name: g, provider: o, upstream_model: gpt}]
auth: {api_keys: [{name: k, hash: "sha256:8f4a6b8e943170ef4a79e9076cc0217c43a7ca45f8cdc6f6de485a1f96a0acd4", subject: s, groups: [g], demo: true}]}
policy: {dir: p}
audit: {file: a.log, stdout: true}
`,
		"",
		minimal,
		"server:\n  listen: ${LISTEN:-127.0.0.1:8080}\n  max_body_bytes: ${SIZE}\n" + minimal,
		"providers:\n  - name: p\n    type: openai\n    base_url: ${URL}\n    api_key: ${KEY}\n    headers:\n      X: $${Y}\n" + minimal,
		"providers:\n  - &p {name: a, type: demo}\n  - *p\n" + minimal,
		"server: &s {listen: ':1'}\nlog: *s\n" + minimal,
		"servr: 1\nproviders: [1, [2], {x: 3}]\nmodels: {a: b}\n",
		"audit: !!binary aGVsbG8=\n",
		"auth:\n  api_keys:\n    - {name: k, hash: 'sha256:', subject: s, groups: ~}\n" + minimal,
		"--- \n...\n---\nfoo: bar\n",
		"? [a, b]\n: c\n",
		"<<: {audit: {stdout: true}}\n",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	lookup := env(map[string]string{
		"LISTEN": "0.0.0.0:1", "SIZE": "12", "URL": "http://127.0.0.1:1/v1",
		"KEY": "a: b\n- c # d", "EMPTY": "",
	})
	f.Fuzz(func(t *testing.T, src []byte) {
		cfg, err := Parse("fuzz.yaml", src, lookup)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		if cfg.Server.Listen == "" || cfg.Log.Level == "" || cfg.Policy.Dir == "" {
			t.Fatalf("defaults missing: %+v", cfg)
		}
		if cfg.Audit.File == "" && !cfg.Audit.Stdout {
			t.Fatal("a config without an audit sink was accepted")
		}
	})
}
