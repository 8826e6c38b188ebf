// Package jsonw writes JSON HTTP responses for the front doors that answer
// in JSON (httpapi, sds): the one place that sets their Content-Type and
// Content-Length. It knows nothing of the registry or of errors; each
// front door maps errors to statuses itself.
package jsonw

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// Write answers status with v encoded as JSON and a trailing newline. A
// value that does not encode answers 500 {"error":"encode response"}.
func Write(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"encode response"}`)
	}
	WriteBody(w, status, append(b, '\n'))
}

// WriteBody answers status with b, an encoded JSON body, as it is.
func WriteBody(w http.ResponseWriter, status int, b []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
