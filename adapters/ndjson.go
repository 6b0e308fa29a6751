package adapters

import (
	"bufio"
	"bytes"
	"errors"
	"io"
)

// LineReader reads newline-delimited JSON (application/x-ndjson, as
// Ollama streams) one line at a time. It is EventReader's sibling for
// providers that do not speak SSE.
type LineReader struct {
	r    *bufio.Reader
	line []byte
}

// NewLineReader reads lines from r.
func NewLineReader(r io.Reader) *LineReader {
	return &LineReader{r: bufio.NewReaderSize(r, 32<<10)}
}

// Next returns the next line that is not blank, without its line ending
// ("\n" or "\r\n"); it is only valid until the next call. A last line the
// upstream closed without its newline is still returned, then io.EOF. A
// line longer than MaxEventSize is ErrEventTooLarge; any other error means
// the stream broke.
func (lr *LineReader) Next() ([]byte, error) {
	for {
		lr.line = lr.line[:0]
		for {
			chunk, err := lr.r.ReadSlice('\n')
			lr.line = append(lr.line, chunk...)
			if len(lr.line) > MaxEventSize {
				return nil, ErrEventTooLarge
			}
			if errors.Is(err, bufio.ErrBufferFull) {
				continue
			}
			if err != nil && !errors.Is(err, io.EOF) {
				return nil, err
			}
			line := bytes.TrimSpace(lr.line)
			if len(line) > 0 {
				return line, nil
			}
			if err != nil {
				return nil, io.EOF
			}
			break // a blank line: read on
		}
	}
}

// Buffered reports how many bytes have arrived but not been read yet, for
// a relay deciding whether to flush.
func (lr *LineReader) Buffered() int { return lr.r.Buffered() }
