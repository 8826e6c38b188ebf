package dnsserver

import (
	"encoding/hex"
	"hash/fnv"
	"slices"
	"strings"

	"github.com/rosterhq/roster/internal/registry"
)

// maxLabel is the longest DNS label, in bytes.
const maxLabel = 63

// instanceLabel is an instance's DNS-SD instance label: its ID, or for an
// ID longer than a label, its first 54 bytes, '-' and 8 hex digits of a
// hash of the whole ID, so labels stay distinct.
func instanceLabel(id string) string {
	if len(id) <= maxLabel {
		return id
	}
	f := fnv.New32a()
	_, _ = f.Write([]byte(id))
	return id[:54] + "-" + hex.EncodeToString(f.Sum(nil))
}

// txtStrings is an instance's TXT data by RFC 6763 §6: metadata as
// key=value in key order, then tags as boolean keys; a key appears once
// (the first, compared without case), keys are printable ASCII without
// '=', each string is at most 255 bytes (longer pairs are left out), and
// an instance with nothing to say gets one empty string.
func txtStrings(in *registry.Instance) []string {
	out := make([]string, 0, len(in.Meta)+len(in.Tags))
	seen := make(map[string]struct{}, len(in.Meta)+len(in.Tags))
	add := func(key, s string) {
		k := strings.ToLower(key)
		if _, dup := seen[k]; dup || !validTXTKey(key) || len(s) > 255 {
			return
		}
		seen[k] = struct{}{}
		out = append(out, escapeTXT(s))
	}
	keys := make([]string, 0, len(in.Meta))
	for k := range in.Meta {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		add(k, k+"="+in.Meta[k])
	}
	for _, t := range in.Tags {
		add(t, t)
	}
	if len(out) == 0 {
		return []string{""}
	}
	return out
}

// validTXTKey: at least one printable US-ASCII character, not '='.
func validTXTKey(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x20 || k[i] > 0x7e || k[i] == '=' {
			return false
		}
	}
	return true
}

// escapeTXT writes s in the form miekg/dns packs TXT strings from: a
// backslash starts an escape, so one in the data is doubled.
func escapeTXT(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	return strings.ReplaceAll(s, `\`, `\\`)
}
