package adapters

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// Frame is one message of an AWS event stream (application/vnd.amazon.eventstream,
// as Bedrock's ConverseStream answers): its string headers and its payload.
type Frame struct {
	// Headers are the frame's string-valued headers (":message-type",
	// ":event-type", ":exception-type", ":content-type"); headers of other
	// types are read and skipped.
	Headers map[string]string
	// Payload is only valid until the next call to Next.
	Payload []byte
}

// MaxFrameSize bounds one event-stream frame, as AWS does (16 MiB).
const MaxFrameSize = 16 << 20

// ErrBadFrame is returned for a frame that is not well formed: lengths
// that do not add up, a checksum that does not match, a bad header.
var ErrBadFrame = errors.New("eventstream: malformed frame")

// FrameReader reads an AWS event stream one frame at a time. It is the
// sibling of EventReader (SSE) and LineReader (NDJSON) for the binary framing.
type FrameReader struct {
	r   *bufio.Reader
	buf []byte
}

// NewFrameReader reads frames from r.
func NewFrameReader(r io.Reader) *FrameReader {
	return &FrameReader{r: bufio.NewReaderSize(r, 32<<10)}
}

// Buffered reports how many bytes have arrived but not been read yet.
func (fr *FrameReader) Buffered() int { return fr.r.Buffered() }

// The frame layout: a prelude of total length, headers length and the
// prelude's CRC32 (4 bytes each), the headers, the payload, and the CRC32
// of everything before it.
const (
	preludeSize = 12
	frameMin    = preludeSize + 4
)

// Next returns the next frame. At a clean end of the stream (between
// frames) it returns io.EOF; a stream cut inside a frame is
// io.ErrUnexpectedEOF, and a malformed frame ErrBadFrame.
func (fr *FrameReader) Next() (Frame, error) {
	var prelude [preludeSize]byte
	if _, err := io.ReadFull(fr.r, prelude[:]); err != nil {
		return Frame{}, err // io.EOF between frames, io.ErrUnexpectedEOF inside one
	}
	total := binary.BigEndian.Uint32(prelude[0:4])
	headersLen := binary.BigEndian.Uint32(prelude[4:8])
	if crc32.ChecksumIEEE(prelude[:8]) != binary.BigEndian.Uint32(prelude[8:12]) {
		return Frame{}, fmt.Errorf("%w: prelude checksum", ErrBadFrame)
	}
	if total < frameMin || total > MaxFrameSize || uint64(headersLen) > uint64(total-frameMin) {
		return Frame{}, fmt.Errorf("%w: length %d with %d bytes of headers", ErrBadFrame, total, headersLen)
	}
	fr.buf = append(fr.buf[:0], prelude[:]...)
	fr.buf = append(fr.buf, make([]byte, total-preludeSize)...)
	if _, err := io.ReadFull(fr.r, fr.buf[preludeSize:]); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return Frame{}, err
	}
	body := fr.buf[:total-4]
	if crc32.ChecksumIEEE(body) != binary.BigEndian.Uint32(fr.buf[total-4:]) {
		return Frame{}, fmt.Errorf("%w: message checksum", ErrBadFrame)
	}
	headers, err := parseHeaders(body[preludeSize : preludeSize+headersLen])
	if err != nil {
		return Frame{}, err
	}
	return Frame{Headers: headers, Payload: body[preludeSize+headersLen:]}, nil
}

// valueSizes are the fixed sizes of the header value types by type
// number; -1 marks the types whose value is length-prefixed.
var valueSizes = [10]int{0, 0, 1, 2, 4, 8, -1, -1, 8, 16}

func parseHeaders(b []byte) (map[string]string, error) {
	h := map[string]string{}
	for len(b) > 0 {
		n := int(b[0])
		if len(b) < 1+n+1 {
			return nil, fmt.Errorf("%w: header name", ErrBadFrame)
		}
		name := string(b[1 : 1+n])
		typ := b[1+n]
		b = b[2+n:]
		if int(typ) >= len(valueSizes) {
			return nil, fmt.Errorf("%w: header type %d", ErrBadFrame, typ)
		}
		size := valueSizes[typ]
		if size < 0 {
			if len(b) < 2 {
				return nil, fmt.Errorf("%w: header length", ErrBadFrame)
			}
			size = int(binary.BigEndian.Uint16(b))
			b = b[2:]
		}
		if len(b) < size {
			return nil, fmt.Errorf("%w: header value", ErrBadFrame)
		}
		if typ == 7 { // string
			h[name] = string(b[:size])
		}
		b = b[size:]
	}
	return h, nil
}

// AppendFrame appends an event-stream frame with the given string headers
// (written in the order of names) and payload to dst, as AWS encodes it.
func AppendFrame(dst []byte, names []string, headers map[string]string, payload []byte) []byte {
	var hb []byte
	for _, name := range names {
		v := headers[name]
		hb = append(hb, byte(len(name)))
		hb = append(hb, name...)
		hb = append(hb, 7)
		hb = binary.BigEndian.AppendUint16(hb, uint16(len(v)))
		hb = append(hb, v...)
	}
	start := len(dst)
	total := uint32(frameMin + len(hb) + len(payload))
	dst = binary.BigEndian.AppendUint32(dst, total)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(hb)))
	dst = binary.BigEndian.AppendUint32(dst, crc32.ChecksumIEEE(dst[start:start+8]))
	dst = append(dst, hb...)
	dst = append(dst, payload...)
	return binary.BigEndian.AppendUint32(dst, crc32.ChecksumIEEE(dst[start:]))
}
