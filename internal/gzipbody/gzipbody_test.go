package gzipbody

import (
	"bytes"
	"compress/gzip"
	"io"
	"strings"
	"testing"
)

func TestAccepts(t *testing.T) {
	tests := []struct {
		values []string
		want   bool
	}{
		{nil, false},
		{[]string{""}, false},
		{[]string{"gzip"}, true},
		{[]string{"GZIP"}, true},
		{[]string{"x-gzip"}, true},
		{[]string{"deflate, gzip"}, true},
		{[]string{"gzip;q=0"}, false},
		{[]string{"gzip; q=0.000"}, false},
		{[]string{"gzip;q=0.5"}, true},
		{[]string{"gzip;level=1;q=1"}, true},
		{[]string{"gzip;q=abc"}, false},
		{[]string{"gzip;q=2"}, false},
		{[]string{"*"}, false},
		{[]string{"identity"}, false},
		{[]string{"br", "gzip"}, true},
		{[]string{"gzipped"}, false},
		{[]string{" gzip ,br"}, true},
	}
	for _, tc := range tests {
		if got := Accepts(tc.values); got != tc.want {
			t.Errorf("Accepts(%q) = %v, want %v", tc.values, got, tc.want)
		}
	}
}

func TestBodyOnce(t *testing.T) {
	plain := []byte(strings.Repeat(`{"id":"web-1","address":"10.0.0.1"},`, 100))
	var g Body
	a, b := g.Bytes(plain), g.Bytes(plain)
	if &a[0] != &b[0] {
		t.Error("compressed twice")
	}
	zr, err := gzip.NewReader(bytes.NewReader(a))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := io.ReadAll(zr); err != nil || !bytes.Equal(got, plain) {
		t.Errorf("round trip: %v", err)
	}
}

func FuzzAccepts(f *testing.F) {
	for _, s := range []string{"gzip", "gzip;q=0", "br, gzip;q=0.5", "x-gzip;q=1;a=b", ";;,,q=", "gzip;q=1e-3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		got := Accepts([]string{v})
		// Order and repetition of other codings do not change the answer.
		if again := Accepts([]string{"identity", v}); again != got {
			t.Fatalf("Accepts(%q) = %v, with identity first %v", v, got, again)
		}
		if got && !strings.Contains(strings.ToLower(v), "gzip") {
			t.Fatalf("Accepts(%q) without gzip in it", v)
		}
	})
}
