package audit

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Log writes records as JSON lines to its sinks. Write encodes the record
// on the caller's goroutine and hands the line to each sink's bounded
// queue; one writer goroutine per sink seals the lines into its hash chain
// and writes them. It is safe for concurrent use.
type Log struct {
	enc   zapcore.Encoder
	sinks []*sink
	log   *zap.Logger

	closeOnce sync.Once
	closeErr  error
}

// Options choose the sinks.
type Options struct {
	// Stdout writes records to standard output (mode block).
	Stdout bool
	// File appends records to this path (created with mode 0600), with the
	// default file options (mode fail-closed, no rotation).
	File string
	// Sinks are further sinks, each with its own options.
	Sinks []SinkOptions
	// Logger receives the sinks' failures, drops and recoveries. Zero
	// value: no log.
	Logger *zap.Logger
	// CloseTimeout bounds how long Close waits for a failing sink to take
	// its queued records. Zero value: 10s.
	CloseTimeout time.Duration
}

// Mode is what a sink does when it cannot keep up or cannot write.
type Mode string

// The modes of a sink.
const (
	// FailClosed keeps every record, retrying until the sink writes
	// again, and meanwhile makes Available fail, so the gateway refuses
	// new calls. Write waits while the queue is full. The default for files.
	FailClosed Mode = "fail-closed"
	// Block keeps every record, retrying until the sink writes again;
	// Write waits while the queue is full. The default for stdout.
	Block Mode = "block"
	// DropAndCount drops a record when the queue is full or a write failed
	// (after the sink's own retries), counts it and logs it. The default
	// for webhooks.
	DropAndCount Mode = "drop-and-count"
)

// SinkOptions configure one sink. Type is "file", "stdout" or "webhook";
// the other fields apply to the types their comments name, and their zero
// values work.
type SinkOptions struct {
	Type string
	// Mode is the behaviour on overflow and failure. Zero value: the type's
	// default (file fail-closed, stdout block, webhook drop-and-count).
	Mode Mode
	// QueueSize bounds the records waiting for the writer. Zero value: 8192.
	QueueSize int

	// File: Path is the file; RotateBytes starts a new file before one
	// would grow past it (0: never); RotateEvery starts a new file when the
	// current one is older (0: never); Fsync is 0 for none (the OS writes
	// back), -1 after every batch of records, or an interval.
	Path          string
	RotateBytes   int64
	RotateEvery   time.Duration
	Fsync         time.Duration
	CheckpointKey []byte

	// Webhook: records are POSTed to URL as NDJSON, up to BatchSize (0:
	// 100) a request, waiting up to FlushInterval (0: 1s) to fill a batch;
	// a failed POST is retried Retries times (0: 3; -1: none) with
	// exponential backoff from 100ms, each try bounded by Timeout (0: 10s).
	URL           string
	Headers       map[string]string
	BatchSize     int
	FlushInterval time.Duration
	Retries       int
	Timeout       time.Duration
}

// FsyncEveryBatch is SinkOptions.Fsync for a sync after every batch.
const FsyncEveryBatch time.Duration = -1

// ErrUnavailable is returned by Available while a fail-closed sink cannot
// write.
var ErrUnavailable = errors.New("audit log unavailable")

// Open opens the sinks and starts their writers.
func Open(o Options) (*Log, error) {
	var all []SinkOptions
	if o.File != "" {
		all = append(all, SinkOptions{Type: "file", Path: o.File})
	}
	if o.Stdout {
		all = append(all, SinkOptions{Type: "stdout"})
	}
	all = append(all, o.Sinks...)
	if len(all) == 0 {
		return nil, fmt.Errorf("open audit log: no sink enabled")
	}
	l := &Log{
		enc: zapcore.NewJSONEncoder(zapcore.EncoderConfig{
			TimeKey:    "time",
			EncodeTime: zapcore.RFC3339NanoTimeEncoder,
		}),
		log: o.Logger,
	}
	if l.log == nil {
		l.log = zap.NewNop()
	}
	closeTimeout := o.CloseTimeout
	if closeTimeout == 0 {
		closeTimeout = 10 * time.Second
	}
	for _, so := range all {
		t, err := newTarget(so, l.enc)
		if err != nil {
			for _, s := range l.sinks {
				s.stop(0)
				_ = s.out.close()
			}
			return nil, err
		}
		l.sinks = append(l.sinks, newSink(so, t, l.log, closeTimeout))
	}
	return l, nil
}

func newTarget(o SinkOptions, enc zapcore.Encoder) (target, error) {
	switch o.Type {
	case "file":
		return openFile(o, enc)
	case "stdout":
		return newStdout(), nil
	case "webhook":
		return newWebhook(o)
	default:
		return nil, fmt.Errorf("open audit log: unknown sink type %q", o.Type)
	}
}

// Write records one call. It returns once every sink has the record in its
// queue: at once, unless a queue is full and its sink is not drop-and-count.
func (l *Log) Write(r *Record) {
	body, err := l.encode(r)
	if err != nil {
		l.log.Error("audit record could not be encoded", zap.String("request_id", r.RequestID), zap.String("trace_id", r.TraceID), zap.Error(err))
		return
	}
	for _, s := range l.sinks {
		s.enqueue(body)
	}
}

// encode returns the record as a JSON object without its closing brace,
// which the sink's chain adds with the seal.
func (l *Log) encode(r *Record) ([]byte, error) {
	buf, err := l.enc.EncodeEntry(zapcore.Entry{Time: r.Time}, []zapcore.Field{zap.Inline(r)})
	if err != nil {
		return nil, err
	}
	b := buf.Bytes()
	b = b[:len(b)-2] // "}\n"
	body := make([]byte, len(b))
	copy(body, b)
	buf.Free()
	return body, nil
}

// Available returns nil when calls may proceed, or an error wrapping
// ErrUnavailable that names each fail-closed sink that cannot write.
func (l *Log) Available() error {
	var down []string
	for _, s := range l.sinks {
		if s.mode == FailClosed {
			if err := s.failure(); err != nil {
				down = append(down, s.name+": "+err.Error())
			}
		}
	}
	if len(down) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrUnavailable, strings.Join(down, "; "))
}

// SinkStats is the state of one sink, for metrics.
type SinkStats struct {
	Name  string
	Type  string
	Mode  Mode
	Queue int
	// Capacity is the queue's bound.
	Capacity int
	Written  uint64
	Dropped  uint64
	// Failing is true while the sink's last write failed.
	Failing bool
}

// Stats returns the state of every sink.
func (l *Log) Stats() []SinkStats {
	out := make([]SinkStats, len(l.sinks))
	for i, s := range l.sinks {
		out[i] = SinkStats{
			Name: s.name, Type: s.kind, Mode: s.mode,
			Queue: len(s.queue), Capacity: cap(s.queue),
			Written: s.written.Load(), Dropped: s.dropped.Load(),
			Failing: s.failure() != nil,
		}
	}
	return out
}

// Close waits for the sinks to write what is queued (a failing sink for up
// to Options.CloseTimeout, after which its records are counted as dropped
// and logged), then closes them. Write must not be called after Close.
func (l *Log) Close() error {
	l.closeOnce.Do(func() {
		var errs []error
		for _, s := range l.sinks {
			if err := s.close(); err != nil {
				errs = append(errs, err)
			}
		}
		l.closeErr = errors.Join(errs...)
	})
	return l.closeErr
}
