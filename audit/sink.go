package audit

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// target is where one sink's records go. Only the sink's writer goroutine
// calls it, so it needs no lock and can own its hash chain.
type target interface {
	// name says what the target is, for logs and metrics.
	name() string
	// write seals and writes a batch of record bodies and returns how
	// many of them it wrote; on an error the rest are retried or dropped
	// by the sink's mode.
	write(bodies [][]byte) (int, error)
	// idle is called when the queue is empty, for periodic work such as
	// fsync.
	idle()
	close() error
}

// Default queue and batch sizes.
const (
	DefaultQueueSize = 8192
	maxBatch         = 512
)

// sink owns one target: its bounded queue and its writer goroutine.
type sink struct {
	name, kind string
	mode       Mode
	out        target
	log        *zap.Logger
	queue      chan []byte
	// linger is how long the writer waits to fill a batch (webhooks).
	linger   time.Duration
	batchMax int

	written, dropped atomic.Uint64
	failErr          atomic.Pointer[error]

	stopping     chan struct{} // closed by close: drain and stop
	stopped      chan struct{} // closed when the writer has returned
	closeTimeout time.Duration
	stopOnce     sync.Once

	// lastDropLog rate-limits the drop log line (writer and callers).
	lastDropLog atomic.Int64
}

func newSink(o SinkOptions, out target, log *zap.Logger, closeTimeout time.Duration) *sink {
	mode := o.Mode
	if mode == "" {
		switch o.Type {
		case "file":
			mode = FailClosed
		case "webhook":
			mode = DropAndCount
		default:
			mode = Block
		}
	}
	size := o.QueueSize
	if size <= 0 {
		size = DefaultQueueSize
	}
	s := &sink{
		name: out.name(), kind: o.Type, mode: mode, out: out, log: log,
		queue:        make(chan []byte, size),
		batchMax:     maxBatch,
		stopping:     make(chan struct{}),
		stopped:      make(chan struct{}),
		closeTimeout: closeTimeout,
	}
	if o.Type == "webhook" {
		s.linger = o.FlushInterval
		if s.linger == 0 {
			s.linger = time.Second
		}
		s.batchMax = o.BatchSize
		if s.batchMax <= 0 {
			s.batchMax = 100
		}
	}
	go s.run()
	return s
}

// enqueue hands a record to the writer. A drop-and-count sink never waits;
// the others wait for room, which is the back-pressure their mode promises.
func (s *sink) enqueue(body []byte) {
	if s.mode == DropAndCount {
		select {
		case s.queue <- body:
		default:
			s.drop(1, "the queue is full")
		}
		return
	}
	select {
	case s.queue <- body:
	case <-s.stopped:
		s.drop(1, "the sink is closed")
	}
}

func (s *sink) drop(n int, why string) {
	total := s.dropped.Add(uint64(n))
	// One line a second at most, with the running total, so a flood of
	// drops is visible without flooding the log.
	now := time.Now().UnixNano()
	last := s.lastDropLog.Load()
	if now-last >= int64(time.Second) && s.lastDropLog.CompareAndSwap(last, now) {
		s.log.Error("audit records dropped", zap.String("sink", s.name), zap.String("reason", why),
			zap.Int("records", n), zap.Uint64("dropped_total", total))
	}
}

func (s *sink) failure() error {
	if p := s.failErr.Load(); p != nil {
		return *p
	}
	return nil
}

func (s *sink) setFailure(err error) {
	if err == nil {
		if s.failErr.Swap(nil) != nil {
			s.log.Info("audit sink writes again", zap.String("sink", s.name))
		}
		return
	}
	if s.failErr.Swap(&err) == nil {
		s.log.Error("audit sink cannot write", zap.String("sink", s.name), zap.String("mode", string(s.mode)), zap.Error(err))
	}
}

// run is the writer goroutine.
func (s *sink) run() {
	defer close(s.stopped)
	batch := make([][]byte, 0, s.batchMax)
	idle := time.NewTicker(time.Second)
	defer idle.Stop()
	for {
		select {
		case body := <-s.queue:
			batch = s.fill(append(batch[:0], body))
			s.deliver(batch)
			clear(batch)
		case <-idle.C:
			s.out.idle()
		case <-s.stopping:
			for {
				batch = s.fill(batch[:0])
				if len(batch) == 0 {
					return
				}
				s.deliver(batch)
				clear(batch)
			}
		}
	}
}

// fill adds what is waiting in the queue to batch, up to the batch size,
// lingering for more when the sink batches over time.
func (s *sink) fill(batch [][]byte) [][]byte {
	var timeout <-chan time.Time
	if s.linger > 0 && len(batch) > 0 {
		t := time.NewTimer(s.linger)
		defer t.Stop()
		timeout = t.C
	}
	for len(batch) < s.batchMax {
		select {
		case body := <-s.queue:
			batch = append(batch, body)
			continue
		default:
		}
		if timeout == nil {
			return batch
		}
		select {
		case body := <-s.queue:
			batch = append(batch, body)
		case <-timeout:
			return batch
		case <-s.stopping:
			timeout = nil
		}
	}
	return batch
}

// deliver writes a batch, retrying as the mode says.
func (s *sink) deliver(batch [][]byte) {
	backoff := 50 * time.Millisecond
	var giveUp <-chan time.Time
	for {
		n, err := s.out.write(batch)
		s.written.Add(uint64(n))
		batch = batch[n:]
		if err == nil {
			s.setFailure(nil)
			return
		}
		s.setFailure(err)
		if s.mode == DropAndCount {
			s.drop(len(batch), "write failed: "+err.Error())
			return
		}
		if giveUp == nil {
			select {
			case <-s.stopping:
				giveUp = time.After(s.closeTimeout)
			default:
			}
		}
		select {
		case <-time.After(backoff):
		case <-giveUp:
			s.dropped.Add(uint64(len(batch)))
			s.log.Error("audit records lost: the sink could not write them before the gateway stopped",
				zap.String("sink", s.name), zap.Int("records", len(batch)), zap.Error(err))
			return
		}
		backoff = min(backoff*2, 2*time.Second)
	}
}

// close drains the queue and closes the target.
func (s *sink) close() error {
	s.stop(s.closeTimeout)
	if err := s.out.close(); err != nil {
		return fmt.Errorf("close audit sink %s: %w", s.name, err)
	}
	if err := s.failure(); err != nil {
		return fmt.Errorf("audit sink %s: %w", s.name, err)
	}
	if n := s.dropped.Load(); n > 0 {
		return fmt.Errorf("audit sink %s dropped %d records", s.name, n)
	}
	return nil
}

func (s *sink) stop(time.Duration) {
	s.stopOnce.Do(func() { close(s.stopping) })
	<-s.stopped
}
