package usage

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strings"
)

// Price is what a model costs, in US dollars per million tokens. A zero
// CachedInput, CacheWrite or Reasoning means the same as Input, Input and
// Output respectively.
type Price struct {
	Input       float64 `json:"input"`
	Output      float64 `json:"output"`
	CachedInput float64 `json:"cached_input"`
	CacheWrite  float64 `json:"cache_write"`
	Reasoning   float64 `json:"reasoning"`
}

// rates is a Price in picodollars (1e-12 USD) per token, which keeps every
// listed price exact in integers: $0.075 per million tokens is 75,000.
type rates struct {
	input, output, cachedInput, cacheWrite, reasoning int64
}

func (p Price) rates() rates {
	pico := func(perMillion float64) int64 { return int64(math.Round(perMillion * 1e6)) }
	r := rates{input: pico(p.Input), output: pico(p.Output), cachedInput: pico(p.CachedInput),
		cacheWrite: pico(p.CacheWrite), reasoning: pico(p.Reasoning)}
	if p.CachedInput == 0 {
		r.cachedInput = r.input
	}
	if p.CacheWrite == 0 {
		r.cacheWrite = r.input
	}
	if p.Reasoning == 0 {
		r.reasoning = r.output
	}
	return r
}

//go:embed prices.json
var defaultPrices []byte

// Prices is the price table: the shipped defaults (prices.json) with the
// configuration's entries over them.
type Prices struct {
	models map[string]rates
	// prefixes are the model names longest first, for dated or suffixed
	// names such as gpt-4o-2024-08-06 or claude-sonnet-4-5-20250929.
	prefixes []string
}

// NewPrices returns the default table overridden and extended by
// overrides, keyed by model name.
func NewPrices(overrides map[string]Price) (*Prices, error) {
	var file struct {
		Models map[string]Price `json:"models"`
	}
	if err := json.Unmarshal(defaultPrices, &file); err != nil {
		return nil, fmt.Errorf("default price table: %w", err)
	}
	for name, p := range overrides {
		if err := p.check(); err != nil {
			return nil, fmt.Errorf("price of %s: %w", name, err)
		}
		file.Models[name] = p
	}
	t := &Prices{models: make(map[string]rates, len(file.Models))}
	for name, p := range file.Models {
		t.models[name] = p.rates()
		t.prefixes = append(t.prefixes, name)
	}
	sort.Slice(t.prefixes, func(i, j int) bool { return len(t.prefixes[i]) > len(t.prefixes[j]) })
	return t, nil
}

func (p Price) check() error {
	for _, v := range []float64{p.Input, p.Output, p.CachedInput, p.CacheWrite, p.Reasoning} {
		if v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("prices are dollars per million tokens, zero or more")
		}
	}
	if p.Input == 0 && p.Output == 0 {
		return fmt.Errorf("set input and output, in dollars per million tokens")
	}
	return nil
}

// lookup finds a model's price: its own entry, else the longest listed
// name it extends with a "-" (a dated snapshot of a listed model), also
// after a "provider/" prefix. ok is false for an unpriced model.
func (t *Prices) lookup(model string) (rates, bool) {
	if t == nil || model == "" {
		return rates{}, false
	}
	if r, ok := t.models[model]; ok {
		return r, true
	}
	for _, name := range t.prefixes {
		if len(model) > len(name) && strings.HasPrefix(model, name) && model[len(name)] == '-' {
			return t.models[name], true
		}
	}
	if i := strings.LastIndexByte(model, '/'); i >= 0 {
		return t.lookup(model[i+1:])
	}
	return rates{}, false
}

// Has reports whether the table prices model.
func (t *Prices) Has(model string) bool {
	_, ok := t.lookup(model)
	return ok
}

// Tokens is the usage of one call as the provider reported it (or, where it
// did not, as the gateway counted it).
type Tokens struct {
	// Input counts every prompt token, CachedInput and CacheWrite among them.
	Input       int64
	CachedInput int64
	CacheWrite  int64
	// Output counts every completion token, Reasoning among them.
	Output    int64
	Reasoning int64
}

// Total is input plus output.
func (t Tokens) Total() int64 { return t.Input + t.Output }

// Cost is what a call cost.
type Cost struct {
	// Pico is the cost in picodollars (1e-12 USD), exact.
	Pico int64
	// PriceMissing says the model has no price: the call was counted in
	// tokens only, at no cost.
	PriceMissing bool
}

// USD is the cost in dollars.
func (c Cost) USD() float64 { return float64(c.Pico) / 1e12 }

// Cost prices a call's usage under model.
func (t *Prices) Cost(model string, u Tokens) Cost {
	r, ok := t.lookup(model)
	if !ok {
		return Cost{PriceMissing: true}
	}
	return Cost{Pico: r.cost(u)}
}

func (r rates) cost(u Tokens) int64 {
	cached, written := clamp(u.CachedInput, u.Input), clamp(u.CacheWrite, u.Input)
	if cached+written > u.Input {
		written = u.Input - cached
	}
	reasoning := clamp(u.Reasoning, u.Output)
	return (u.Input-cached-written)*r.input + cached*r.cachedInput + written*r.cacheWrite +
		(u.Output-reasoning)*r.output + reasoning*r.reasoning
}

func clamp(v, hi int64) int64 {
	switch {
	case v < 0:
		return 0
	case v > hi:
		return hi
	}
	return v
}
