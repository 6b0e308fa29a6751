package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"portcullis/audit"
)

func TestAuditVerify(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l, err := audit.Open(audit.Options{File: path})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		l.Write(&audit.Record{Time: time.Now(), RequestID: "req_1", Status: 200})
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	code, out, _ := runCmd(t, "audit", "verify", path)
	if code != 0 || !strings.Contains(out, ": ok: 3 records (3 calls), chain intact") {
		t.Errorf("intact file: exit %d, %q", code, out)
	}
	data, _ := os.ReadFile(path)
	lines := strings.SplitAfter(string(data), "\n")
	if err := os.WriteFile(path, []byte(lines[0]+lines[2]), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCmd(t, "audit", "verify", path)
	if code != 1 || !strings.Contains(out, "BROKEN: line 2: records are missing before it") || !strings.Contains(errOut, "1 of 1 files failed") {
		t.Errorf("file with a deleted line: exit %d, %q, %q", code, out, errOut)
	}
	if code, _, _ := runCmd(t, "audit", "verify"); code != 2 {
		t.Errorf("no file: exit %d", code)
	}
}
