// Package held keeps a handler's (small, JSON) HTTP answer in memory, so the caller can look at
// it before it decides to send it or another answer instead.
package held

import "net/http"

// Response is an http.ResponseWriter that keeps what is written.
type Response struct {
	header http.Header
	own    bool // the headers are held apart from the real writer's
	Status int  // 200 once the handler wrote a body without a status
	Body   []byte
}

// Share holds an answer whose headers go straight to the real writer's header map.
func Share(header http.Header) *Response { return &Response{header: header} }

// Apart holds an answer with headers of its own, sent only with it.
func Apart() *Response { return &Response{header: http.Header{}, own: true} }

// Header implements http.ResponseWriter.
func (r *Response) Header() http.Header { return r.header }

// WriteHeader implements http.ResponseWriter; the first status counts.
func (r *Response) WriteHeader(code int) {
	if r.Status == 0 {
		r.Status = code
	}
}

// Write implements http.ResponseWriter.
func (r *Response) Write(p []byte) (int, error) {
	if r.Status == 0 {
		r.Status = http.StatusOK
	}
	r.Body = append(r.Body, p...)
	return len(p), nil
}

// Done settles the status of a handler that wrote nothing (200).
func (r *Response) Done() {
	if r.Status == 0 {
		r.Status = http.StatusOK
	}
}

// Send writes the held answer to w.
func (r *Response) Send(w http.ResponseWriter) {
	r.Done()
	if r.own {
		for k, v := range r.header {
			w.Header()[k] = v
		}
	}
	w.WriteHeader(r.Status)
	_, _ = w.Write(r.Body)
}
