package usage

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// A window is the period a limit counts in: a calendar period (minute,
// hour, day, week from Monday, month) in the meter's time zone, which
// starts afresh at its boundary, or a rolling duration, which always
// covers the last so long. A rolling window is kept in buckets of a
// fraction of its length; spending leaves it with its bucket, so up to one
// bucket late and never early — a limit is never lifted too soon.
type window struct {
	calendar string
	rolling  time.Duration
	// buckets is how many buckets a rolling window is kept in.
	buckets int64
}

// rollingBuckets is how many buckets a rolling budget is kept in; rate
// limits use rateBuckets over their minute.
const (
	rollingBuckets = 60
	rateBuckets    = 12
)

func parseWindow(s string) (window, error) {
	switch s {
	case "minute", "hour", "day", "week", "month":
		return window{calendar: s}, nil
	}
	if d, ok := strings.CutPrefix(s, "rolling:"); ok {
		dur, err := time.ParseDuration(d)
		if err == nil && dur >= time.Second {
			return window{rolling: dur, buckets: rollingBuckets}, nil
		}
	}
	return window{}, fmt.Errorf("window %q: use minute, hour, day, week, month or rolling:<duration> such as rolling:24h", s)
}

// slot is where a limit's counter is at a moment: the key suffix naming
// the calendar period (or the rolling window), the current bucket and how
// many buckets are summed, when the current bucket or period ends, and
// how long a store must keep what is written now.
type slot struct {
	// suffix is built in place, so a counter's key costs one allocation.
	suffix [24]byte
	n      int
	bucket int64
	span   int64
	reset  time.Time
	ttl    time.Duration
}

// keepAfter is how long a store keeps a period's counter after it ended,
// so that a settlement arriving late still finds it and reports can show
// the last period.
const keepAfter = time.Hour

func (w window) slot(now time.Time, loc *time.Location) slot {
	if w.rolling > 0 {
		size := w.rolling / time.Duration(w.buckets)
		if size < time.Second {
			size = time.Second
		}
		b := now.UnixNano() / int64(size)
		sl := slot{
			bucket: b,
			span:   (int64(w.rolling) + int64(size) - 1) / int64(size),
			reset:  time.Unix(0, (b+1)*int64(size)),
			ttl:    w.rolling + size + keepAfter,
		}
		sl.n = len(strconv.AppendInt(append(sl.suffix[:0], 'r'), int64(w.rolling/time.Second), 10))
		return sl
	}
	t := now.In(loc)
	y, mo, d := t.Date()
	var start, end time.Time
	switch w.calendar {
	case "minute":
		start = time.Date(y, mo, d, t.Hour(), t.Minute(), 0, 0, loc)
		end = start.Add(time.Minute)
	case "hour":
		start = time.Date(y, mo, d, t.Hour(), 0, 0, 0, loc)
		end = start.Add(time.Hour)
	case "day":
		start = time.Date(y, mo, d, 0, 0, 0, 0, loc)
		end = time.Date(y, mo, d+1, 0, 0, 0, 0, loc)
	case "week":
		back := (int(t.Weekday()) + 6) % 7 // days since Monday
		start = time.Date(y, mo, d-back, 0, 0, 0, 0, loc)
		end = time.Date(y, mo, d-back+7, 0, 0, 0, 0, loc)
	default: // month
		start = time.Date(y, mo, 1, 0, 0, 0, 0, loc)
		end = time.Date(y, mo+1, 1, 0, 0, 0, 0, loc)
	}
	sl := slot{span: 1, reset: end, ttl: end.Sub(now) + keepAfter}
	sl.n = len(start.AppendFormat(append(sl.suffix[:0], w.calendar[:2]...), "20060102T1504"))
	return sl
}

// key is a counter's key: prefix, name, "|", the slot's suffix.
func (sl *slot) key(prefix, name string) string {
	var b strings.Builder
	b.Grow(len(prefix) + len(name) + 1 + sl.n)
	b.WriteString(prefix)
	b.WriteString(name)
	b.WriteByte('|')
	b.Write(sl.suffix[:sl.n])
	return b.String()
}
