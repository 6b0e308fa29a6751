package authz

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"hash"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/open-policy-agent/opa/v1/ast"
)

// decisionCacheSize bounds the decisions a bundle remembers.
const decisionCacheSize = 8192

// decisionCache remembers decisions by their input. A deterministic policy
// is a function of its input and data; the input only changes when the
// call does or when the clock passes a second (input.time has second
// precision), so a cached decision is the one evaluation would give. Each
// bundle has its own cache, so a reload starts afresh.
type decisionCache struct {
	lru *lru.Cache[[sha256.Size]byte, Decision]
}

func newDecisionCache() *decisionCache {
	c, _ := lru.New[[sha256.Size]byte, Decision](decisionCacheSize)
	return &decisionCache{lru: c}
}

// deterministic reports whether no module calls a built-in whose result
// can change between two evaluations of the same input (time.now_ns,
// http.send, rand.intn, ...). Only then may decisions be cached.
func deterministic(modules []*ast.Module) bool {
	ok := true
	nondeterministic := func(op string) bool {
		bi, found := ast.BuiltinMap[op]
		return found && bi.Nondeterministic
	}
	for _, m := range modules {
		// A call is either an expression (time.now_ns(x)) or a term
		// inside one (x := time.now_ns()).
		ast.WalkExprs(m, func(e *ast.Expr) bool {
			if e.IsCall() && nondeterministic(e.Operator().String()) {
				ok = false
			}
			return !ok
		})
		ast.WalkTerms(m, func(t *ast.Term) bool {
			call, isCall := t.Value.(ast.Call)
			if !isCall || len(call) == 0 {
				return !ok
			}
			if nondeterministic(call[0].String()) {
				ok = false
			}
			return !ok
		})
	}
	return ok
}

// key is a digest of everything the input document holds.
func (in *Input) key() [sha256.Size]byte {
	h := sha256.New()
	id := in.Identity
	if id != nil {
		writeStrings(h, string(id.Type), id.Subject, id.Email, id.Name, id.Issuer)
		writeStrings(h, id.Groups...)
		writeStrings(h, id.Roles...)
		if len(id.Claims) > 0 {
			// encoding/json sorts map keys, so equal claims hash equally.
			claims, _ := json.Marshal(id.Claims)
			h.Write(claims)
		}
	}
	r := &in.Request
	writeStrings(h, r.API, r.Model, r.ToolChoice, r.ClientIP, r.UserAgent)
	writeStrings(h, r.Tools...)
	writeStrings(h, r.Modalities...)
	var n [8 * 4]byte
	binary.LittleEndian.PutUint64(n[0:], uint64(r.MaxTokens))
	binary.LittleEndian.PutUint64(n[8:], uint64(r.EstimatedInputTokens))
	if r.Stream {
		n[16] = 1
	}
	binary.LittleEndian.PutUint64(n[24:], uint64(in.Time.Unix()))
	h.Write(n[:])
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}

// writeStrings writes a length-prefixed list, so ("ab","c") and ("a","bc")
// differ.
func writeStrings(h hash.Hash, ss ...string) {
	var l [8]byte
	binary.LittleEndian.PutUint64(l[:], uint64(len(ss)))
	h.Write(l[:])
	for _, s := range ss {
		binary.LittleEndian.PutUint64(l[:], uint64(len(s)))
		h.Write(l[:])
		h.Write([]byte(s))
	}
}
