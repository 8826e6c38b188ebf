package answers

import (
	"slices"
	"strconv"
	"strings"
)

// Key builds a cache key from tagged fields. Every value is
// length-prefixed, so no value (they come from query strings) can imitate
// another query's key. The zero value is ready to use; a front door
// writes its fields in a fixed order with its own one-byte tags.
type Key struct {
	b strings.Builder
}

// Field adds one value under tag.
func (k *Key) Field(tag byte, s string) {
	k.b.WriteByte(tag)
	k.b.WriteString(strconv.Itoa(len(s)))
	k.b.WriteByte(':')
	k.b.WriteString(s)
}

// Set adds each value under tag, sorted: the order they were given in
// does not change the key. vs is not changed.
func (k *Key) Set(tag byte, vs []string) {
	sorted := slices.Clone(vs)
	slices.Sort(sorted)
	for _, v := range sorted {
		k.Field(tag, v)
	}
}

// Map adds each pair of m, by sorted key: the key under keyTag, then its
// value under valTag.
func (k *Key) Map(keyTag, valTag byte, m map[string]string) {
	keys := make([]string, 0, len(m))
	for key := range m {
		keys = append(keys, key)
	}
	slices.Sort(keys)
	for _, key := range keys {
		k.Field(keyTag, key)
		k.Field(valTag, m[key])
	}
}

// String is the key.
func (k *Key) String() string { return k.b.String() }
