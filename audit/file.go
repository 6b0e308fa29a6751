package audit

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// fileTarget appends sealed lines to a file, rotating it by size or age.
// Each file is its own chain; a rotated-to file starts with a checkpoint
// line that holds the previous file's last hash (signed when a key is
// configured), so the chain of chains can be followed across files.
type fileTarget struct {
	o   SinkOptions
	enc zapcore.Encoder

	f      *os.File // nil after a failure: reopened on the next write
	size   int64
	opened time.Time
	chain  chain
	// dirty is true when lines were written since the last fsync.
	dirty    bool
	lastSync time.Time
	buf      []byte
}

func openFile(o SinkOptions, enc zapcore.Encoder) (*fileTarget, error) {
	t := &fileTarget{o: o, enc: enc}
	if err := t.open(); err != nil {
		return nil, fmt.Errorf("open audit file: %w", err)
	}
	return t, nil
}

func (t *fileTarget) name() string { return "file " + t.o.Path }

// open opens the file for appending and takes up its chain from its last
// line. A torn last line (a write cut short by a crash or a full disk) is
// cut off, so that the file stays a sequence of whole records. A file whose
// last line is not sealed (written before the chain existed) is rotated
// away, so the new file starts a clean chain.
func (t *fileTarget) open() error {
	f, err := os.OpenFile(t.o.Path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	last, end, err := lastLine(f, info.Size())
	if err != nil {
		f.Close()
		return err
	}
	if end < info.Size() {
		if err := f.Truncate(end); err != nil {
			f.Close()
			return fmt.Errorf("cut off a torn last line: %w", err)
		}
	}
	t.f, t.size, t.opened = f, end, time.Now()
	if info, err := f.Stat(); err == nil && end > 0 {
		t.opened = info.ModTime()
	}
	lastHash := t.chain.prev
	t.chain.prev = Genesis
	if len(last) > 0 {
		t.chain.prev = sha256Hex(last)
		if !sealed(last) {
			return t.rotate()
		}
		return nil
	}
	if lastHash != "" && lastHash != Genesis {
		// The file this sink wrote was moved or removed by someone else:
		// the new one still names where the chain left off.
		if err := t.writeCheckpoint("", lastHash); err != nil {
			t.fail()
			return err
		}
	}
	return nil
}

// moved reports whether the path no longer names the open file (another
// program moved, removed or replaced it).
func (t *fileTarget) moved() bool {
	at, err := os.Stat(t.o.Path)
	if err != nil {
		return true
	}
	open, err := t.f.Stat()
	return err != nil || !os.SameFile(at, open)
}

// sealed reports whether a line ends with the chain's seal.
func sealed(line []byte) bool {
	return len(line) > sealLen && bytes.Equal(line[len(line)-sealLen:len(line)-sealLen+len(prevKey)], []byte(prevKey))
}

// lastLine returns the last complete line of f (without its newline) and
// the offset just past it.
func lastLine(f *os.File, size int64) ([]byte, int64, error) {
	chunk := int64(64 << 10)
	for {
		from := max(size-chunk, 0)
		b := make([]byte, size-from)
		if _, err := f.ReadAt(b, from); err != nil && !errors.Is(err, io.EOF) {
			return nil, 0, err
		}
		nl := bytes.LastIndexByte(b, '\n')
		if nl < 0 && from > 0 {
			chunk *= 2
			continue
		}
		if nl < 0 {
			return nil, 0, nil // no complete line at all
		}
		end := from + int64(nl) + 1
		prev := bytes.LastIndexByte(b[:nl], '\n')
		if prev < 0 && from > 0 {
			chunk *= 2
			continue
		}
		return b[prev+1 : nl], end, nil
	}
}

func (t *fileTarget) write(bodies [][]byte) (int, error) {
	if t.f != nil && t.moved() {
		t.fail()
	}
	if t.f == nil {
		if err := t.open(); err != nil {
			return 0, err
		}
	}
	done := 0
	t.buf = t.buf[:0]
	for _, body := range bodies {
		lineLen := int64(len(body) + sealLen + 1)
		if t.due(int64(len(t.buf)), lineLen) {
			n, err := t.flush()
			done += n
			if err != nil {
				return done, err
			}
			if err := t.rotate(); err != nil {
				t.fail()
				return done, err
			}
		}
		t.buf = t.chain.seal(t.buf, body)
		t.buf = append(t.buf, '\n')
	}
	n, err := t.flush()
	done += n
	if err != nil {
		return done, err
	}
	if t.o.Fsync == FsyncEveryBatch {
		if err := t.sync(); err != nil {
			return done, err
		}
	}
	return done, nil
}

// flush writes the buffered lines and says how many of them it wrote.
func (t *fileTarget) flush() (int, error) {
	if len(t.buf) == 0 {
		return 0, nil
	}
	n, err := t.f.Write(t.buf)
	t.size += int64(n)
	t.dirty = true
	lines := bytes.Count(t.buf[:n], []byte{'\n'})
	t.buf = t.buf[:0]
	if err != nil {
		t.fail()
		return lines, err
	}
	return lines, nil
}

// fail closes the file after an error; the next write reopens it, which
// takes the chain up again from what the file really holds.
func (t *fileTarget) fail() {
	if t.f != nil {
		_ = t.f.Close()
		t.f = nil
	}
}

// due reports whether the file, with pending bytes not yet written, must
// be rotated before a line of n bytes. A file never rotates empty.
func (t *fileTarget) due(pending, n int64) bool {
	if t.size+pending == 0 {
		return false
	}
	if t.o.RotateBytes > 0 && t.size+pending+n > t.o.RotateBytes {
		return true
	}
	return t.o.RotateEvery > 0 && time.Since(t.opened) >= t.o.RotateEvery
}

// rotate renames the current file aside, starts a new one and writes its
// checkpoint line.
func (t *fileTarget) rotate() error {
	if err := t.f.Sync(); err != nil {
		return err
	}
	if err := t.f.Close(); err != nil {
		return err
	}
	t.f = nil
	aside := t.o.Path + "." + time.Now().UTC().Format("20060102T150405.000000000Z")
	if err := os.Rename(t.o.Path, aside); err != nil {
		return fmt.Errorf("rotate: %w", err)
	}
	f, err := os.OpenFile(t.o.Path, os.O_RDWR|os.O_APPEND|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("rotate: %w", err)
	}
	lastHash := t.chain.prev
	t.f, t.size, t.opened, t.chain.prev = f, 0, time.Now(), Genesis
	return t.writeCheckpoint(aside, lastHash)
}

// writeCheckpoint starts a new, empty file with the line that names the
// previous file and its last hash.
func (t *fileTarget) writeCheckpoint(prevFile, lastHash string) error {
	cp := checkpoint{time: time.Now(), prevFile: prevFile, prevLastHash: lastHash, signature: checkpointSignature(t.o.CheckpointKey, lastHash)}
	buf, err := t.enc.EncodeEntry(zapcore.Entry{Time: cp.time}, []zapcore.Field{zap.Inline(&cp)})
	if err != nil {
		return err
	}
	b := buf.Bytes()
	line := t.chain.seal(nil, b[:len(b)-2])
	buf.Free()
	line = append(line, '\n')
	n, err := t.f.Write(line)
	t.size += int64(n)
	if err != nil {
		return fmt.Errorf("write checkpoint: %w", err)
	}
	return t.f.Sync()
}

// checkpoint is the first line of a rotated-to file.
type checkpoint struct {
	time         time.Time
	prevFile     string
	prevLastHash string
	signature    string
}

func (c *checkpoint) MarshalLogObject(e zapcore.ObjectEncoder) error {
	e.AddString("kind", "checkpoint")
	e.AddString("prev_file", c.prevFile)
	e.AddString("prev_file_last_hash", c.prevLastHash)
	e.AddString("signature", c.signature)
	return nil
}

func (t *fileTarget) sync() error {
	if t.f == nil || !t.dirty {
		return nil
	}
	t.dirty, t.lastSync = false, time.Now()
	if err := t.f.Sync(); err != nil {
		t.fail()
		return err
	}
	return nil
}

func (t *fileTarget) idle() {
	if t.o.Fsync > 0 && time.Since(t.lastSync) >= t.o.Fsync {
		_ = t.sync()
	}
}

func (t *fileTarget) close() error {
	if t.f == nil {
		return nil
	}
	err := t.f.Sync()
	if cerr := t.f.Close(); err == nil {
		err = cerr
	}
	t.f = nil
	return err
}
