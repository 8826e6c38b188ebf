package jsonw

import (
	"net/http/httptest"
	"strconv"
	"testing"
)

func TestWrite(t *testing.T) {
	tests := []struct {
		name   string
		status int
		v      any
		code   int
		body   string
	}{
		{"value", 201, map[string]string{"a": "b"}, 201, "{\"a\":\"b\"}\n"},
		{"does not encode", 200, func() {}, 500, "{\"error\":\"encode response\"}\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			Write(rec, tc.status, tc.v)
			if rec.Code != tc.code || rec.Body.String() != tc.body {
				t.Errorf("got %d %q, want %d %q", rec.Code, rec.Body.String(), tc.code, tc.body)
			}
			h := rec.Header()
			if h.Get("Content-Type") != "application/json" || h.Get("Content-Length") != strconv.Itoa(len(tc.body)) {
				t.Errorf("headers %v", h)
			}
		})
	}
}
