package audit

import (
	"bufio"
	"bytes"
	"encoding/json"
	"sync"
)

// Recorder is an audit output that keeps the lines, for tests.
type Recorder struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (r *Recorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.buf.Write(p)
}

// String is every line written so far.
func (r *Recorder) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.buf.String()
}

// Lines are the lines written so far, decoded (a line that is not a JSON object is a nil
// map, for the test to fail on).
func (r *Recorder) Lines() []map[string]any {
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader([]byte(r.String())))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) != nil {
			m = nil
		}
		out = append(out, m)
	}
	return out
}

// Find is the lines whose "what" is what.
func (r *Recorder) Find(what string) []map[string]any {
	var out []map[string]any
	for _, l := range r.Lines() {
		if l != nil && l["what"] == what {
			out = append(out, l)
		}
	}
	return out
}
