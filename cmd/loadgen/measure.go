package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// procCPU is a process's CPU time and page faults so far, from /proc/<pid>/stat (minflt and
// majflt, fields 10 and 12; utime and stime, fields 14 and 15, in clock ticks).
type procCPU struct {
	User, System   time.Duration
	MinFlt, MajFlt int64
}

func readProcCPU(pid int, ticks int) (procCPU, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procCPU{}, err
	}
	return parseProcStat(string(raw), ticks)
}

// parseProcStat reads the faults, utime and stime of a /proc/<pid>/stat line. The command name (field 2)
// is in parentheses and may hold spaces and parentheses, so the fields are counted from the
// last ')'.
func parseProcStat(s string, ticks int) (procCPU, error) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 || ticks <= 0 {
		return procCPU{}, fmt.Errorf("/proc stat: unexpected format")
	}
	f := strings.Fields(s[i+1:]) // f[0] is field 3 (state): field n is f[n-3]
	if len(f) < 13 {
		return procCPU{}, fmt.Errorf("/proc stat: %d fields after the command name", len(f))
	}
	minf, err1 := strconv.ParseInt(f[7], 10, 64)
	majf, err2 := strconv.ParseInt(f[9], 10, 64)
	ut, err3 := strconv.ParseUint(f[11], 10, 64)
	st, err4 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || err4 != nil {
		return procCPU{}, fmt.Errorf("/proc stat: minflt %q majflt %q utime %q stime %q", f[7], f[9], f[11], f[12])
	}
	tick := time.Second / time.Duration(ticks)
	return procCPU{User: time.Duration(ut) * tick, System: time.Duration(st) * tick, MinFlt: minf, MajFlt: majf}, nil
}

// procMem is a process's memory from /proc/<pid>/status: resident now (VmRSS) and its peak
// since the process started (VmHWM), in KiB.
type procMem struct {
	RSS, HWM int64
}

func readProcMem(pid int) (procMem, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return procMem{}, err
	}
	return parseProcStatus(string(raw))
}

// parseProcStatus reads VmRSS and VmHWM ("VmRSS:\t  104220 kB") of a /proc/<pid>/status.
func parseProcStatus(s string) (procMem, error) {
	var m procMem
	seen := 0
	for line := range strings.SplitSeq(s, "\n") {
		name, rest, ok := strings.Cut(line, ":")
		if !ok || (name != "VmRSS" && name != "VmHWM") {
			continue
		}
		v, ok := strings.CutSuffix(strings.TrimSpace(rest), " kB")
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if !ok || err != nil {
			return procMem{}, fmt.Errorf("/proc status: %s %q", name, rest)
		}
		if name == "VmRSS" {
			m.RSS = n
		} else {
			m.HWM = n
		}
		seen++
	}
	if seen != 2 {
		return procMem{}, fmt.Errorf("/proc status: no VmRSS and VmHWM (a kernel thread or a zombie?)")
	}
	return m, nil
}

// clockTicks is USER_HZ from `getconf CLK_TCK`, or 100 (Linux's value everywhere) with a note.
func clockTicks() (int, string) {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(out))); err == nil && n > 0 {
			return n, ""
		}
	}
	return 100, "getconf CLK_TCK failed; assumed 100 ticks/s"
}

// commandStats reads INFO commandstats: calls per command.
func commandStats(ctx context.Context, rdb redis.UniversalClient) (map[string]int64, error) {
	s, err := rdb.Info(ctx, "commandstats").Result()
	if err != nil {
		return nil, err
	}
	return parseCommandStats(s), nil
}

// parseCommandStats parses lines like "cmdstat_get:calls=12,usec=30,…".
func parseCommandStats(s string) map[string]int64 {
	m := map[string]int64{}
	for line := range strings.SplitSeq(s, "\n") {
		line = strings.TrimSpace(line)
		name, rest, ok := strings.Cut(line, ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") {
			continue
		}
		for kv := range strings.SplitSeq(rest, ",") {
			if v, ok := strings.CutPrefix(kv, "calls="); ok {
				if n, err := strconv.ParseInt(v, 10, 64); err == nil {
					m[strings.TrimPrefix(name, "cmdstat_")] = n
				}
			}
		}
	}
	return m
}
