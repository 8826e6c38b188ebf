package consulapi

import (
	"strings"
	"testing"
)

func TestAcceptsGzip(t *testing.T) {
	tests := []struct {
		values []string
		want   bool
	}{
		{nil, false},
		{[]string{"gzip"}, true},
		{[]string{"deflate, GZip;q=0.3"}, true},
		{[]string{"x-gzip"}, true},
		{[]string{"gzip;q=0"}, false},
		{[]string{"gzip;q=bad"}, false},
		{[]string{"*"}, false},
		{[]string{"br", "gzip"}, true},
	}
	for _, tc := range tests {
		if got := acceptsGzip(tc.values); got != tc.want {
			t.Errorf("acceptsGzip(%q) = %v, want %v", tc.values, got, tc.want)
		}
	}
}

func FuzzAcceptsGzip(f *testing.F) {
	for _, s := range []string{"gzip", "gzip;q=0", "br, gzip;q=0.5", ";;,,q="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		got := acceptsGzip([]string{v})
		if again := acceptsGzip([]string{"identity", v}); again != got {
			t.Fatalf("acceptsGzip(%q) = %v, with identity first %v", v, got, again)
		}
		if got && !strings.Contains(strings.ToLower(v), "gzip") {
			t.Fatalf("acceptsGzip(%q) without gzip in it", v)
		}
	})
}
