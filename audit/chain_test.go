package audit

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// chainedFile writes n records through a Log and returns the file's path
// and lines.
func chainedFile(t *testing.T, n int) (string, []string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.log")
	l, err := Open(Options{File: path})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		r := fullRecord()
		r.RequestID = fmt.Sprintf("req_%d", i)
		l.Write(r)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return path, readLines(t, path)
}

func verifyOne(t *testing.T, path string, key []byte) FileReport {
	t.Helper()
	return VerifyFiles([]string{path}, key)[0]
}

func TestVerifyIntactChain(t *testing.T) {
	path, lines := chainedFile(t, 5)
	if !strings.Contains(lines[0], `"prev_hash":"`+Genesis+`"`) {
		t.Errorf("first line does not start at the genesis marker: %s", lines[0])
	}
	if !strings.HasSuffix(lines[1], `"}`) || !strings.Contains(lines[1], `"prev_hash":"`+sha256Hex([]byte(lines[0]))+`"`) {
		t.Errorf("second line's prev_hash is not the hash of the first line: %s", lines[1])
	}
	rep := verifyOne(t, path, nil)
	if !rep.OK() || rep.Records != 5 || rep.Calls != 5 || rep.LastHash != sha256Hex([]byte(lines[4])) {
		t.Errorf("report = %+v", rep)
	}
	// Opening the file again continues its chain.
	l, err := Open(Options{File: path})
	if err != nil {
		t.Fatal(err)
	}
	l.Write(fullRecord())
	l.Close()
	if rep := verifyOne(t, path, nil); !rep.OK() || rep.Records != 6 {
		t.Errorf("after reopening: %+v", rep)
	}
}

// Every way of tampering with the file is caught, at the right line.
func TestVerifyFindsTampering(t *testing.T) {
	for _, tc := range []struct {
		name   string
		tamper func([]string) []string
		want   string
	}{
		{"edited", func(l []string) []string {
			l[2] = strings.Replace(l[2], `"prompt_tokens":11`, `"prompt_tokens":1`, 1)
			return l
		}, "line 3: edited"},
		{"edited with its own hash recomputed", func(l []string) []string {
			body := strings.Replace(l[2], `"prompt_tokens":11`, `"prompt_tokens":1`, 1)
			body = body[:len(body)-sealLen]
			var c chain
			c.prev = sha256Hex([]byte(l[1]))
			l[2] = string(c.seal(nil, []byte(body)))
			return l
		}, "line 4: records are missing before it"},
		{"deleted", func(l []string) []string { return slices.Delete(l, 2, 3) }, "line 3: records are missing before it"},
		{"first deleted", func(l []string) []string { return l[1:] }, "line 1: the file does not start a chain"},
		{"inserted copy", func(l []string) []string { return slices.Insert(l, 3, l[1]) }, "line 4: inserted"},
		{"inserted forgery", func(l []string) []string {
			var c chain
			c.prev = sha256Hex([]byte(l[2]))
			forged := string(c.seal(nil, []byte(`{"time":"2026-11-25T14:28:00Z","kind":"call","request_id":"req_forged"`)))
			return slices.Insert(l, 3, forged)
		}, "line 4: inserted"},
		{"reordered", func(l []string) []string { l[2], l[3] = l[3], l[2]; return l }, "line 3: out of order"},
		{"torn", func(l []string) []string { l[5] = l[5][:40]; return l }, "line 6: not a sealed record"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path, lines := chainedFile(t, 6)
			lines = tc.tamper(lines)
			if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			rep := verifyOne(t, path, nil)
			if !strings.HasPrefix(rep.Problem, tc.want) {
				t.Errorf("problem = %q, want it to start with %q", rep.Problem, tc.want)
			}
		})
	}
}

// Rotation starts each file with a checkpoint naming the previous file's
// last hash, signed with the key; verify follows the chain across files.
func TestRotationContinuesTheChain(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	key := []byte("checkpoint-key")
	l, err := Open(Options{Sinks: []SinkOptions{{Type: "file", Path: path, RotateBytes: 4000, CheckpointKey: key}}})
	if err != nil {
		t.Fatal(err)
	}
	const n = 20
	for i := range n {
		r := fullRecord()
		r.RequestID = fmt.Sprintf("req_%d", i)
		l.Write(r)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(path + ".*")
	slices.Sort(files)
	files = append(files, path)
	if len(files) < 3 {
		t.Fatalf("%d files after writing %d records with rotation at 4000 bytes", len(files), n)
	}
	calls := 0
	for i, rep := range VerifyFiles(files, key) {
		calls += rep.Calls
		if !rep.OK() {
			t.Errorf("%s: %s", rep.Path, rep.Problem)
		}
		if i > 0 && !strings.Contains(rep.Checkpoint, "signature good, linked to "+files[i-1]) {
			t.Errorf("%s: checkpoint %q", rep.Path, rep.Checkpoint)
		}
		if info, _ := os.Stat(rep.Path); info.Size() > 4000 {
			t.Errorf("%s is %d bytes, over the rotation size", rep.Path, info.Size())
		}
	}
	if calls != n {
		t.Errorf("%d call records across the files, want %d", calls, n)
	}
	if rep := VerifyFiles(files[1:2], []byte("wrong key"))[0]; !strings.Contains(rep.Problem, "signature does not match") {
		t.Errorf("wrong key: %+v", rep)
	}
	// A file left out between two others breaks the link.
	reps := VerifyFiles([]string{files[0], files[2]}, key)
	if !strings.Contains(reps[1].Problem, "records are missing at the end of") {
		t.Errorf("skipped file: %+v", reps[1])
	}
}
