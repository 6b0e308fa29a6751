package audit

import (
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkWrite measures audit records through Log.Write to a file sink,
// including the writer goroutine that seals and writes them (Close waits
// for the last one): records/s is end to end, allocs/op is per record.
func BenchmarkWrite(b *testing.B) {
	for _, tc := range []struct {
		name     string
		o        SinkOptions
		parallel bool
	}{
		{"file", SinkOptions{Type: "file"}, false},
		{"file-parallel", SinkOptions{Type: "file"}, true},
		{"file-rotate-1MiB", SinkOptions{Type: "file", RotateBytes: 1 << 20}, false},
		{"file-fsync-1s", SinkOptions{Type: "file", Fsync: time.Second}, false},
	} {
		b.Run(tc.name, func(b *testing.B) {
			o := tc.o
			o.Path = filepath.Join(b.TempDir(), "audit.log")
			l, err := Open(Options{Sinks: []SinkOptions{o}})
			if err != nil {
				b.Fatal(err)
			}
			r := fullRecord()
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			if tc.parallel {
				b.RunParallel(func(pb *testing.PB) {
					r := fullRecord()
					for pb.Next() {
						l.Write(r)
					}
				})
			} else {
				for b.Loop() {
					l.Write(r)
				}
			}
			if err := l.Close(); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "records/s")
		})
	}
}
