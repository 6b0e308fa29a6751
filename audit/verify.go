package audit

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
)

// FileReport is what Verify found in one file.
type FileReport struct {
	Path string
	// Records counts the lines of the file, Calls those of kind "call".
	Records, Calls int
	// LastHash is the hash of the last line, which a checkpoint in the
	// next file must name.
	LastHash string
	// Checkpoint describes the file's first line when it continues a
	// rotated file; empty otherwise.
	Checkpoint string
	// Problem is the first break found, with its line number; empty when
	// the chain is whole.
	Problem string
}

// OK reports whether the file's chain is whole.
func (r *FileReport) OK() bool { return r.Problem == "" }

// VerifyFiles verifies each file's chain, and where a file starts with a
// checkpoint and the file before it in paths is the one it names as its
// predecessor (by last hash), the link between them. key, when not empty,
// checks the checkpoints' signatures.
func VerifyFiles(paths []string, key []byte) []FileReport {
	reports := make([]FileReport, 0, len(paths))
	for i, p := range paths {
		r := FileReport{Path: p}
		f, err := os.Open(p)
		if err != nil {
			r.Problem = err.Error()
			reports = append(reports, r)
			continue
		}
		cp, err := verifyStream(f, &r)
		f.Close()
		if err != nil {
			r.Problem = "read: " + err.Error()
		}
		if cp != nil && r.OK() {
			r.Checkpoint = checkpointNote(cp, key, reports, i)
			if r.Checkpoint != "" && cp.problem {
				r.Problem = "line 1: " + r.Checkpoint
			}
		}
		reports = append(reports, r)
	}
	return reports
}

type checkpointLine struct {
	Kind             string `json:"kind"`
	PrevFile         string `json:"prev_file"`
	PrevFileLastHash string `json:"prev_file_last_hash"`
	Signature        string `json:"signature"`
	problem          bool
}

func checkpointNote(cp *checkpointLine, key []byte, before []FileReport, i int) string {
	prevFile := cp.PrevFile
	if prevFile == "" {
		prevFile = "a file another program moved or removed"
	}
	note := "continues " + prevFile
	switch {
	case len(key) > 0 && cp.Signature == "":
		cp.problem = true
		return "the checkpoint is not signed, but a key was given"
	case len(key) > 0 && !hmac.Equal([]byte(cp.Signature), []byte(checkpointSignature(key, cp.PrevFileLastHash))):
		cp.problem = true
		return "the checkpoint's signature does not match: it was forged or made with another key"
	case len(key) > 0:
		note += ", signature good"
	case cp.Signature != "":
		note += ", signature not checked (no key given)"
	}
	if i > 0 && before[i-1].OK() {
		if before[i-1].LastHash != cp.PrevFileLastHash {
			cp.problem = true
			return fmt.Sprintf("the checkpoint names a previous file whose last hash is %s, but %s ends with %s: records are missing at the end of %s, or it is not the file before this one",
				short(cp.PrevFileLastHash), before[i-1].Path, short(before[i-1].LastHash), before[i-1].Path)
		}
		return note + ", linked to " + before[i-1].Path
	}
	return note + " (not given: the link is not checked)"
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12] + "…"
	}
	return h
}

// verifiedLine is what the walk keeps of each line.
type verifiedLine struct {
	hash, prev string // the line's own hash (SHA-256 of its bytes) and its prev_hash
}

// verifyStream walks the lines of one file; it returns the file's
// checkpoint line if it starts with one.
func verifyStream(r io.Reader, rep *FileReport) (*checkpointLine, error) {
	br := bufio.NewReaderSize(r, 1<<20)
	var lines []verifiedLine
	var cp *checkpointLine
	for n := 1; ; n++ {
		raw, err := br.ReadBytes('\n')
		if len(raw) == 0 && errors.Is(err, io.EOF) {
			break
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return cp, err
		}
		if raw[len(raw)-1] != '\n' {
			rep.Problem = fmt.Sprintf("line %d: incomplete (no newline at the end): a write was cut short", n)
			return cp, nil
		}
		line := raw[:len(raw)-1]
		prev, _, problem := checkLine(line)
		if problem != "" && rep.Problem == "" {
			rep.Problem = fmt.Sprintf("line %d: %s", n, problem)
		}
		var head struct {
			checkpointLine
		}
		if json.Unmarshal(line, &head) != nil && rep.Problem == "" {
			rep.Problem = fmt.Sprintf("line %d: not valid JSON", n)
		}
		switch head.Kind {
		case "call":
			rep.Calls++
		case "checkpoint":
			if n == 1 {
				c := head.checkpointLine
				cp = &c
			}
		}
		lines = append(lines, verifiedLine{hash: sha256Hex(line), prev: prev})
	}
	rep.Records = len(lines)
	if len(lines) > 0 {
		rep.LastHash = lines[len(lines)-1].hash
	}
	if rep.Problem == "" {
		rep.Problem = chainProblem(lines)
	}
	return cp, nil
}

// checkLine checks one line's own hash and returns its prev_hash.
func checkLine(line []byte) (prev, own, problem string) {
	if len(line) < sealLen+2 || line[0] != '{' ||
		!bytes.Equal(line[len(line)-sealLen:len(line)-sealLen+len(prevKey)], []byte(prevKey)) ||
		!bytes.Equal(line[len(line)-len(hashKey)-hexLen-2:len(line)-hexLen-2], []byte(hashKey)) {
		return "", "", "not a sealed record (no prev_hash and hash at its end)"
	}
	prev = string(line[len(line)-sealLen+len(prevKey) : len(line)-sealLen+len(prevKey)+hexLen])
	own = string(line[len(line)-hexLen-2 : len(line)-2])
	body := len(line) - len(hashKey) - hexLen - 2 + 1 // up to and including prev_hash's closing quote
	sealedPart := make([]byte, 0, body+1)
	sealedPart = append(append(sealedPart, line[:body]...), '}')
	if sha256Hex(sealedPart) != own {
		return prev, own, "edited: the record does not match its own hash"
	}
	return prev, own, ""
}

// chainProblem finds the first line whose prev_hash does not name the line
// before it, and says what most likely happened.
func chainProblem(lines []verifiedLine) string {
	at := make(map[string]int, len(lines)) // line hash → line number
	for i, l := range lines {
		if _, dup := at[l.hash]; !dup {
			at[l.hash] = i + 1
		}
	}
	for i, l := range lines {
		n := i + 1
		want := Genesis
		if i > 0 {
			want = lines[i-1].hash
		}
		if l.prev == want {
			continue
		}
		if i == 0 {
			if j, ok := at[l.prev]; ok {
				return fmt.Sprintf("line 1: out of order: it follows line %d", j)
			}
			return "line 1: the file does not start a chain: records before it were deleted, or it is not the first file of a chain"
		}
		j, known := at[l.prev]
		if known && j > n {
			return fmt.Sprintf("line %d: out of order: it follows line %d, which comes after it", n, j)
		}
		// The next line still follows the previous one: this one was put in.
		if i+1 < len(lines) && lines[i+1].prev == want {
			return fmt.Sprintf("line %d: inserted: it is not part of the chain (line %d follows line %d)", n, n+1, n-1)
		}
		if known && j == n-2 {
			return fmt.Sprintf("line %d: inserted: it is not part of the chain (line %d follows line %d)", j+1, n, j)
		}
		if known && j < n-2 {
			return fmt.Sprintf("line %d: inserted: lines %d to %d are not part of the chain (line %d follows line %d)", j+1, j+1, n-1, n, j)
		}
		if l.prev == Genesis {
			return fmt.Sprintf("line %d: a new chain starts here: the lines before it belong to another file", n)
		}
		return fmt.Sprintf("line %d: records are missing before it: it does not follow line %d (deleted, or line %d was rewritten with a new hash)", n, n-1, n-1)
	}
	return ""
}
