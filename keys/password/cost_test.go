package password

import (
	"runtime/metrics"
	"syscall"
	"testing"
	"time"
)

// processCost is what this process spent so far: CPU (user, system), the runtime's GC CPU
// estimate and page faults. Benchmarks report its growth per op, so a KDF run in a benchmark
// can be compared with one in the server (whose CPU and faults come from /proc).
type processCost struct {
	user, sys, gc time.Duration
	minflt        int64
}

func readCost(tb testing.TB) processCost {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	s := []metrics.Sample{{Name: "/cpu/classes/gc/total:cpu-seconds"}}
	metrics.Read(s)
	return processCost{
		user:   time.Duration(ru.Utime.Nano()),
		sys:    time.Duration(ru.Stime.Nano()),
		gc:     time.Duration(s[0].Value.Float64() * float64(time.Second)),
		minflt: ru.Minflt,
	}
}

// reportCost reports cpu-ms/op (user + system), sys-ms/op, gc-cpu-ms/op and minflt/op since
// c0. The runtime's GC CPU figure is an estimate updated at the end of each cycle.
func reportCost(b *testing.B, c0 processCost) {
	b.Helper()
	c1 := readCost(b)
	n := float64(b.N)
	perOp := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) / n }
	b.ReportMetric(perOp(c1.user-c0.user+c1.sys-c0.sys), "cpu-ms/op")
	b.ReportMetric(perOp(c1.sys-c0.sys), "sys-ms/op")
	b.ReportMetric(perOp(c1.gc-c0.gc), "gc-cpu-ms/op")
	b.ReportMetric(float64(c1.minflt-c0.minflt)/n, "minflt/op")
}
