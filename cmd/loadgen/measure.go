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

// procCPU is a process's CPU time so far, from /proc/<pid>/stat (utime and stime, fields 14
// and 15, in clock ticks).
type procCPU struct {
	User, System time.Duration
}

func readProcCPU(pid int, ticks int) (procCPU, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procCPU{}, err
	}
	return parseProcStat(string(raw), ticks)
}

// parseProcStat reads utime and stime of a /proc/<pid>/stat line. The command name (field 2)
// is in parentheses and may hold spaces and parentheses, so the fields are counted from the
// last ')'.
func parseProcStat(s string, ticks int) (procCPU, error) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 || ticks <= 0 {
		return procCPU{}, fmt.Errorf("/proc stat: unexpected format")
	}
	f := strings.Fields(s[i+1:]) // f[0] is field 3 (state): utime is field 14 = f[11]
	if len(f) < 13 {
		return procCPU{}, fmt.Errorf("/proc stat: %d fields after the command name", len(f))
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return procCPU{}, fmt.Errorf("/proc stat: utime %q stime %q", f[11], f[12])
	}
	tick := time.Second / time.Duration(ticks)
	return procCPU{User: time.Duration(ut) * tick, System: time.Duration(st) * tick}, nil
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
