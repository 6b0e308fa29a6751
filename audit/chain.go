package audit

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
)

// The hash chain. Every line a sink writes ends with two fields:
//
//	{...record...,"prev_hash":"P","hash":"H"}
//
// P is the SHA-256 (hex) of the previous line of the same file or stream,
// byte for byte as written and without its newline, or Genesis for the
// first line. H is the SHA-256 of the line up to and including P's closing
// quote, followed by "}" — the line as it was before "hash" was added. An
// edited line fails its own hash; a deleted, inserted or moved line breaks
// the next line's P.

// Genesis is the prev_hash of the first line of every file (and of every
// stdout or webhook stream when the gateway starts).
var Genesis = sha256Hex([]byte("portcullis audit log v1: genesis"))

const (
	prevKey = `,"prev_hash":"`
	hashKey = `","hash":"`
	hexLen  = 64
	// sealLen is the length of the seal a line ends with.
	sealLen = len(prevKey) + hexLen + len(hashKey) + hexLen + len(`"}`)
)

// chain seals lines; only its sink's writer goroutine touches it.
type chain struct {
	prev string // hex hash of the last line written; Genesis before any
}

// seal appends body (a JSON object lacking its closing brace) to dst, with
// the chain fields and closing brace, and advances the chain. It returns
// the extended dst; the new line runs from len(dst) before the call to
// the end, without a newline.
func (c *chain) seal(dst, body []byte) []byte {
	start := len(dst)
	dst = append(dst, body...)
	dst = append(dst, prevKey...)
	dst = append(dst, c.prev...)
	dst = append(dst, '"', '}')
	own := sha256.Sum256(dst[start:])
	dst = dst[:len(dst)-1] // drop the "}" again: "hash" goes before it
	dst = append(dst, `,"hash":"`...)
	dst = hex.AppendEncode(dst, own[:])
	dst = append(dst, '"', '}')
	c.prev = sha256Hex(dst[start:])
	return dst
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// checkpointSignature signs the last hash of a rotated file with an HMAC
// key, so that the next file's checkpoint cannot be forged without it.
func checkpointSignature(key []byte, lastHash string) string {
	if len(key) == 0 {
		return ""
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte("portcullis audit checkpoint v1\n"))
	m.Write([]byte(lastHash))
	return "hmac-sha256:" + hex.EncodeToString(m.Sum(nil))
}
