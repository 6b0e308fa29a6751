package usage

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// LocalStore is the embedded store: counters in memory, and, when it has
// a file, an append-only log of every change to them on local disk.
//
// Every reservation is logged as an addition of the whole reserved amount
// and every settlement as the (usually negative) correction, so a
// reservation whose settlement never reached the disk counts as spent in
// full: a crash can only make the counters higher than what was spent,
// never lower, except for the changes of the last flush interval, which a
// kill -9 may take with it (reservation and settlement alike). The log is
// written and fsynced every flush interval, and compacted into a snapshot
// of the live counters when it grows past a size.
type LocalStore struct {
	mu       sync.Mutex
	counters map[string]*localCounter
	// reports are the report counters, by day, scope, name, model, provider.
	reports map[reportKey]*reportCounter
	// pending is what is not written to the log yet, and pendingSettled
	// how many settlements it holds.
	pending        []byte
	pendingSettled int64
	now            func() time.Time
	// sweepAt is the number of counters past which expired ones are
	// dropped, so that a store without compaction (the memory-only one)
	// does not keep every period it ever saw.
	sweepAt int

	// flushMu keeps the file to one writer: the flush loop, or Flush.
	flushMu sync.Mutex
	spare   []byte
	file    *os.File
	path    string
	opts    FileOptions
	size    int64
	settled int64 // settlements on disk, counted since start
	stop    chan struct{}
	done    chan struct{}
}

var _ Store = (*LocalStore)(nil)

// FileOptions configure the embedded store's file.
type FileOptions struct {
	// FlushInterval is how often the log is written and fsynced: the most
	// a kill -9 or power cut can lose. Zero value: 1s.
	FlushInterval time.Duration
	// CompactBytes is the log size past which it is rewritten as a
	// snapshot of the live counters. Zero value: 64 MiB.
	CompactBytes int64
	// Synced, when set, is called after each fsync with the number of
	// settlements on disk since the store opened.
	Synced func(settled int64)
	// Warn reports a problem the store carries on through (a torn last
	// line, a failed write that will be retried).
	Warn func(msg string, err error)
}

type localCounter struct {
	buckets []bucketAmount
	expires time.Time
}

type bucketAmount struct {
	bucket int64
	Amount
}

// NewMemoryStore returns an embedded store that keeps nothing on disk
// (tests, and the local fallback when Redis is unreachable).
func NewMemoryStore() *LocalStore {
	return &LocalStore{counters: map[string]*localCounter{}, reports: map[reportKey]*reportCounter{}, now: time.Now}
}

// OpenLocalStore opens (or creates) the embedded store's log at path and
// loads the counters it holds.
func OpenLocalStore(path string, o FileOptions) (*LocalStore, error) {
	if o.FlushInterval <= 0 {
		o.FlushInterval = time.Second
	}
	if o.CompactBytes <= 0 {
		o.CompactBytes = 64 << 20
	}
	if o.Warn == nil {
		o.Warn = func(string, error) {}
	}
	s := NewMemoryStore()
	s.path, s.opts = path, o
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("usage store: %w", err)
	}
	if err := s.load(); err != nil {
		return nil, err
	}
	// Start from a compacted file: the load dropped expired counters and
	// a torn last line, which must not stay in front of new lines.
	if err := s.rewrite(s.snapshotLocked()); err != nil {
		return nil, err
	}
	s.stop, s.done = make(chan struct{}), make(chan struct{})
	go s.flushLoop()
	return s, nil
}

// Reserve implements Store.
func (s *LocalStore) Reserve(_ context.Context, a *Ask) (Grant, error) {
	used := make([]Amount, len(a.Counters))
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for i, c := range a.Counters {
		used[i] = s.sumLocked(c, now)
	}
	out, refused, unit := fit(a, used)
	if refused >= 0 {
		return Grant{Refused: refused, Unit: unit, Used: used}, nil
	}
	amt := a.amount(out)
	for i, c := range a.Counters {
		s.addLocked(c, amt, now, 'r')
		used[i] = Amount{used[i].Requests + amt.Requests, used[i].Tokens + amt.Tokens, used[i].Pico + amt.Pico}
	}
	return Grant{Output: out, Refused: -1, Used: used}, nil
}

// Settle implements Store.
func (s *LocalStore) Settle(_ context.Context, counters []Counter, delta Amount) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for _, c := range counters {
		s.addLocked(c, delta, now, 's')
	}
	s.pendingSettled++
	return nil
}

// Read implements Store.
func (s *LocalStore) Read(_ context.Context, counters []Counter) ([]Amount, error) {
	out := make([]Amount, len(counters))
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for i, c := range counters {
		out[i] = s.sumLocked(c, now)
	}
	return out, nil
}

func (s *LocalStore) sumLocked(c Counter, now time.Time) Amount {
	lc := s.counters[c.Key]
	if lc == nil || now.After(lc.expires) {
		return Amount{}
	}
	var sum Amount
	for _, b := range lc.buckets {
		if b.bucket > c.Bucket-c.Span && b.bucket <= c.Bucket {
			sum.Requests += b.Requests
			sum.Tokens += b.Tokens
			sum.Pico += b.Pico
		}
	}
	return sum
}

func (s *LocalStore) addLocked(c Counter, amt Amount, now time.Time, kind byte) {
	if len(s.counters) >= s.sweepAt {
		for key, lc := range s.counters {
			if now.After(lc.expires) {
				delete(s.counters, key)
			}
		}
		s.sweepAt = 2*len(s.counters) + 1024
	}
	expires := now.Add(c.TTL).Truncate(time.Second).Add(time.Second)
	s.applyLocked(c.Key, c.Bucket, c.Span, expires, amt)
	if s.path != "" {
		s.pending = appendLine(s.pending, kind, c.Key, c.Bucket, expires.Unix(), amt)
	}
}

// applyLocked adds amt to a bucket, dropping buckets that fell out of a
// window of span buckets (span 0 keeps them all, as a load does).
func (s *LocalStore) applyLocked(key string, bucket, span int64, expires time.Time, amt Amount) {
	lc := s.counters[key]
	if lc == nil {
		lc = &localCounter{}
		s.counters[key] = lc
	}
	if expires.After(lc.expires) {
		lc.expires = expires
	}
	kept := lc.buckets[:0]
	found := false
	for _, b := range lc.buckets {
		if span > 0 && b.bucket <= bucket-span {
			continue
		}
		if b.bucket == bucket {
			b.Requests += amt.Requests
			b.Tokens += amt.Tokens
			b.Pico += amt.Pico
			found = true
		}
		kept = append(kept, b)
	}
	if !found {
		kept = append(kept, bucketAmount{bucket, amt})
	}
	lc.buckets = kept
}

// appendLine writes one change: kind (r reserve, s settle, c snapshot),
// key, bucket, expiry (Unix seconds), requests, tokens, picodollars.
func appendLine(b []byte, kind byte, key string, bucket, expires int64, a Amount) []byte {
	b = append(b, kind, ' ')
	if plainKey(key) {
		b = append(b, '"')
		b = append(b, key...)
		b = append(b, '"')
	} else {
		b = strconv.AppendQuote(b, key)
	}
	for _, v := range [...]int64{bucket, expires, a.Requests, a.Tokens, a.Pico} {
		b = append(b, ' ')
		b = strconv.AppendInt(b, v, 10)
	}
	return append(b, '\n')
}

// plainKey reports whether key quotes as itself: printable ASCII without
// a quote or backslash, as budget keys almost always are.
func plainKey(key string) bool {
	for i := 0; i < len(key); i++ {
		if c := key[i]; c < ' ' || c > '~' || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

func parseLine(line []byte) (key string, bucket, expires int64, a Amount, err error) {
	if len(line) < 3 || line[1] != ' ' {
		return "", 0, 0, a, fmt.Errorf("malformed line")
	}
	rest := string(line[2:])
	q, err := strconv.QuotedPrefix(rest)
	if err != nil {
		return "", 0, 0, a, err
	}
	key, _ = strconv.Unquote(q)
	fields := bytes.Fields([]byte(rest[len(q):]))
	if len(fields) != 5 {
		return "", 0, 0, a, fmt.Errorf("want 5 numbers, have %d", len(fields))
	}
	var n [5]int64
	for i, f := range fields {
		if n[i], err = strconv.ParseInt(string(f), 10, 64); err != nil {
			return "", 0, 0, a, err
		}
	}
	return key, n[0], n[1], Amount{n[2], n[3], n[4]}, nil
}

func (s *LocalStore) load() error {
	f, err := os.Open(s.path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("usage store: %w", err)
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 64<<10)
	now := s.now()
	for n := 1; ; n++ {
		line, err := r.ReadBytes('\n')
		if len(line) == 0 && err != nil {
			break
		}
		if line[len(line)-1] != '\n' {
			// A line the last write did not finish: what it would have
			// said is lost with the rest of the flush interval.
			s.opts.Warn("usage store: torn last line dropped", fmt.Errorf("%s line %d", s.path, n))
			break
		}
		if line[0] == 'u' {
			k, t, expires, perr := parseReportLine(line[:len(line)-1])
			if perr != nil {
				return fmt.Errorf("usage store %s line %d: %w", s.path, n, perr)
			}
			if exp := time.Unix(expires, 0); !now.After(exp) {
				s.applyReportLocked(k, t, exp)
			}
			continue
		}
		key, bucket, expires, amt, perr := parseLine(line[:len(line)-1])
		if perr != nil {
			return fmt.Errorf("usage store %s line %d: %w", s.path, n, perr)
		}
		exp := time.Unix(expires, 0)
		if now.After(exp) {
			continue
		}
		s.applyLocked(key, bucket, 0, exp, amt)
	}
	return nil
}

// snapshotLocked writes every live counter as lines that add up to it.
func (s *LocalStore) snapshotLocked() []byte {
	var b []byte
	now := s.now()
	for key, lc := range s.counters {
		if now.After(lc.expires) {
			delete(s.counters, key)
			continue
		}
		for _, bk := range lc.buckets {
			b = appendLine(b, 'c', key, bk.bucket, lc.expires.Unix(), bk.Amount)
		}
	}
	for k, rc := range s.reports {
		if now.After(rc.expires) {
			delete(s.reports, k)
			continue
		}
		b = appendReportLine(b, k, rc.Totals, rc.expires.Unix())
	}
	return b
}

// rewrite replaces the log with snapshot, atomically (write, fsync, rename).
func (s *LocalStore) rewrite(snapshot []byte) error {
	tmp := s.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o640)
	if err == nil {
		_, err = f.Write(snapshot)
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err == nil {
		err = os.Rename(tmp, s.path)
	}
	if err == nil {
		err = syncDir(filepath.Dir(s.path))
	}
	if err != nil {
		return fmt.Errorf("usage store: compact %s: %w", s.path, err)
	}
	if s.file != nil {
		s.file.Close()
	}
	s.file, err = os.OpenFile(s.path, os.O_APPEND|os.O_WRONLY, 0o640)
	if err != nil {
		return fmt.Errorf("usage store: %w", err)
	}
	s.size = int64(len(snapshot))
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func (s *LocalStore) flushLoop() {
	defer close(s.done)
	t := time.NewTicker(s.opts.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			s.Flush()
			return
		case <-t.C:
			s.Flush()
		}
	}
}

// Flush writes and fsyncs the changes not on disk yet, now rather than at
// the next flush interval.
func (s *LocalStore) Flush() {
	if s.path == "" {
		return
	}
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	s.flush(&s.spare)
}

// flush writes what is pending and fsyncs it, or, past the size limit,
// replaces the log with a snapshot taken at the same moment. Only the
// flush goroutine touches the file, and the lock is not held while it does.
func (s *LocalStore) flush(spare *[]byte) {
	s.mu.Lock()
	buf, settled := s.pending, s.pendingSettled
	if len(buf) == 0 {
		s.mu.Unlock()
		return
	}
	s.pending, s.pendingSettled = (*spare)[:0], 0
	var snapshot []byte
	if s.size+int64(len(buf)) > s.opts.CompactBytes {
		snapshot = s.snapshotLocked()
	}
	s.mu.Unlock()

	var err error
	if snapshot != nil {
		err = s.rewrite(snapshot)
	} else {
		if _, err = s.file.Write(buf); err == nil {
			err = s.file.Sync()
		}
		if err == nil {
			s.size += int64(len(buf))
		} else {
			// A torn write must not run into the next one's first line.
			_ = s.file.Truncate(s.size)
		}
	}
	if err != nil {
		// Keep the changes for the next try, in front of newer ones.
		s.opts.Warn("usage store: write failed; retrying at the next flush", err)
		s.mu.Lock()
		s.pending = append(buf, s.pending...)
		s.pendingSettled += settled
		s.mu.Unlock()
		*spare = nil
		return
	}
	*spare = buf
	s.settled += settled
	if s.opts.Synced != nil {
		s.opts.Synced(s.settled)
	}
}

// Close implements Store: the last changes are written and fsynced.
func (s *LocalStore) Close() error {
	if s.stop == nil {
		return nil
	}
	close(s.stop)
	<-s.done
	s.stop = nil
	return s.file.Close()
}
