package answers

import (
	"slices"
	"testing"
)

func TestKey(t *testing.T) {
	tests := []struct {
		name string
		fill func(*Key)
		want string
	}{
		{"empty", func(k *Key) {}, ""},
		{"fields", func(k *Key) { k.Field('s', "web"); k.Field('z', "") }, "s3:webz0:"},
		{"set is sorted", func(k *Key) { k.Set('t', []string{"b", "a"}) }, "t1:at1:b"},
		{"map by sorted key", func(k *Key) { k.Map('k', 'v', map[string]string{"z": "1", "a": "22"}) }, "k1:av2:22k1:zv1:1"},
		// A value that holds another field's encoding stays one value.
		{"no imitation", func(k *Key) { k.Field('s', "web3:x") }, "s6:web3:x"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var k Key
			tc.fill(&k)
			if got := k.String(); got != tc.want {
				t.Errorf("key %q, want %q", got, tc.want)
			}
		})
	}
}

func TestKeySetKeepsItsInput(t *testing.T) {
	tags := []string{"b", "a"}
	var k Key
	k.Set('t', tags)
	if !slices.Equal(tags, []string{"b", "a"}) {
		t.Errorf("Set reordered its input: %v", tags)
	}
}
