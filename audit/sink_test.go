package audit

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// waitFor polls cond (a hang guard, not a timing assertion).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A fail-closed file sink whose file is replaced by a directory reports
// itself unavailable, keeps the records, and recovers by itself once the
// path can be written again; the new file's checkpoint links the chain to
// the moved file.
func TestFailClosedFileRecovers(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	l, err := Open(Options{File: path})
	if err != nil {
		t.Fatal(err)
	}
	write := func(id string) {
		r := fullRecord()
		r.RequestID = id
		l.Write(r)
	}
	write("req_before")
	waitFor(t, "the first record", func() bool { return l.Stats()[0].Written == 1 })
	if err := l.Available(); err != nil {
		t.Fatalf("healthy sink: %v", err)
	}

	moved := path + ".moved"
	if err := os.Rename(path, moved); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	write("req_during_1")
	waitFor(t, "the sink to report the failure", func() bool { return l.Available() != nil })
	if err := l.Available(); !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "is a directory") {
		t.Errorf("Available = %v", err)
	}
	write("req_during_2")
	if s := l.Stats()[0]; !s.Failing || s.Dropped != 0 {
		t.Errorf("stats while failing: %+v", s)
	}

	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the sink to recover", func() bool { return l.Available() == nil && l.Stats()[0].Written == 3 })
	write("req_after")
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	reps := VerifyFiles([]string{moved, path}, nil)
	for _, r := range reps {
		if !r.OK() {
			t.Errorf("%s: %s", r.Path, r.Problem)
		}
	}
	if reps[0].Calls != 1 || reps[1].Calls != 3 || !strings.Contains(reps[1].Checkpoint, "linked to "+moved) {
		t.Errorf("reports: %+v", reps)
	}
}

// A drop-and-count sink never makes Write wait: when its writer cannot
// keep up, records are dropped and counted, and nothing else.
func TestDropAndCountNeverBlocks(t *testing.T) {
	release := make(chan struct{})
	var got bytes.Buffer
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
		mu.Lock()
		io.Copy(&got, r.Body)
		mu.Unlock()
	}))
	defer srv.Close()
	l, err := Open(Options{Sinks: []SinkOptions{{Type: "webhook", URL: srv.URL, QueueSize: 4, BatchSize: 2, FlushInterval: time.Millisecond}}})
	if err != nil {
		t.Fatal(err)
	}
	const n = 100
	for i := range n {
		r := fullRecord()
		r.RequestID = fmt.Sprintf("req_%d", i)
		l.Write(r) // returns at once although the webhook hangs
	}
	s := l.Stats()[0]
	if s.Mode != DropAndCount || s.Dropped == 0 || s.Dropped > n-4 {
		t.Errorf("stats: %+v", s)
	}
	close(release)
	err = l.Close()
	s = l.Stats()[0]
	if s.Written+s.Dropped != n || err == nil || !strings.Contains(err.Error(), "dropped") {
		t.Errorf("written %d + dropped %d != %d; Close: %v", s.Written, s.Dropped, n, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if lines := strings.Count(got.String(), "\n"); uint64(lines) != s.Written {
		t.Errorf("webhook got %d lines, sink wrote %d", lines, s.Written)
	}
}

// The webhook sink batches records, retries a failed POST with backoff,
// and delivers every record once, in one chain.
func TestWebhookBatchesAndRetries(t *testing.T) {
	var mu sync.Mutex
	var body bytes.Buffer
	posts, failures := 0, 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		posts++
		if r.Header.Get("Content-Type") != "application/x-ndjson" || r.Header.Get("Authorization") != "Bearer siem" {
			t.Errorf("headers %v", r.Header)
		}
		if posts%3 == 1 { // every third POST fails, the first among them
			failures++
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		io.Copy(&body, r.Body)
	}))
	defer srv.Close()
	l, err := Open(Options{Sinks: []SinkOptions{{Type: "webhook", URL: srv.URL, Mode: Block, BatchSize: 10,
		FlushInterval: 5 * time.Millisecond, Headers: map[string]string{"Authorization": "Bearer siem"}}}})
	if err != nil {
		t.Fatal(err)
	}
	const n = 95
	for i := range n {
		r := fullRecord()
		r.RequestID = fmt.Sprintf("req_%d", i)
		l.Write(r)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	path := filepath.Join(t.TempDir(), "received")
	if err := os.WriteFile(path, body.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	rep := VerifyFiles([]string{path}, nil)[0]
	if !rep.OK() || rep.Calls != n || failures == 0 {
		t.Errorf("received %+v after %d posts, %d failed", rep, posts, failures)
	}
	sc := bufio.NewScanner(bytes.NewReader(body.Bytes()))
	sc.Buffer(nil, 1<<20)
	for i := 0; sc.Scan(); i++ {
		if !strings.Contains(sc.Text(), fmt.Sprintf(`"request_id":"req_%d"`, i)) {
			t.Fatalf("line %d is out of order: %.80s", i, sc.Text())
		}
	}
}

// Fsync "always" and a queue of one still write every record.
func TestFileFsyncAndSmallQueue(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l, err := Open(Options{Sinks: []SinkOptions{{Type: "file", Path: path, Fsync: FsyncEveryBatch, QueueSize: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() { l.Write(fullRecord()) })
	}
	wg.Wait()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if rep := VerifyFiles([]string{path}, nil)[0]; !rep.OK() || rep.Calls != 20 {
		t.Errorf("%+v", rep)
	}
}
