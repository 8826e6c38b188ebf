package sds

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/rosterhq/roster/internal/registry"
)

// Tags are a host's free-form tags: JSON values by name, each kept as
// canonical JSON text (compact, nested objects with sorted keys, numbers
// spelt as they were sent), so that a value reads back as it was sent.
type Tags map[string]json.RawMessage

// Tag names with a meaning.
const (
	TagAZ         = "az"
	TagInstanceID = "instance_id"
	TagRegion     = "region"
	TagCanary     = "canary"
	TagWeight     = "load_balancing_weight"
)

// requiredTags must be present in every registration. Any JSON value
// does, except that az must be a string (Envoy's schema says so).
var requiredTags = []string{TagAZ, TagInstanceID, TagRegion}

// Meta keys that carry a host's SDS state. Every key of the scheme starts
// with metaPrefix; other metadata of an instance is left alone.
const (
	metaPrefix = "sds."
	// metaCheckIn holds last_check_in, in its wire format.
	metaCheckIn = "sds.last_check_in"
	// metaTag holds a tag whose value is a printable string, as the
	// string itself, so that `?meta=sds.tag.az=us-east-1a` filters on it.
	metaTag = "sds.tag."
	// metaTagJSON holds any other tag value as canonical JSON.
	metaTagJSON = "sds.tagj."
)

// Limits of the tag scheme, inside the registry's metadata limits.
const (
	// MaxTags leaves room in registry.MaxMeta for last_check_in and a
	// few keys set through other APIs.
	MaxTags = registry.MaxMeta - 4
	// MaxTagNameLen is the longest tag name once encoded (encodeTagName).
	MaxTagNameLen = registry.MaxMetaKeyLen - len(metaTagJSON)
	// MaxTagValueLen is the longest value as stored.
	MaxTagValueLen = registry.MaxMetaValLen
)

// Texts of the original API's error bodies.
const (
	textTagsNotJSON    = "Invalid json supplied in tags"
	textWeightMissing  = "Required parameter 'weight' is missing."
	textWeightInvalid  = "Invalid load_balancing_weight. Supply an integer between 1 and 100."
	textHostNotFound   = "Host not found"
	textTagsNotObject  = "tags must be a JSON object"
	textCanaryNotBool  = "tags.canary must be a boolean"
	textAZNotString    = "tags.az must be a string"
	textTooManyTags    = "too many tags"
	textTagNameTooLong = "tag name too long"
)

// parseTags reads the tags form field: JSON text holding an object. Text
// that is not JSON gets the original's error; JSON that is not an object
// is refused too, so that every answer's tags are an object.
func parseTags(text string) (Tags, error) {
	b := []byte(text)
	if !json.Valid(b) {
		return nil, badRequest(textTagsNotJSON)
	}
	if t := bytes.TrimLeft(b, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		// The original's own test of an all-"0" form expects a bare 400.
		return nil, emptyBadRequest(textTagsNotObject)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var raw map[string]any
	if err := dec.Decode(&raw); err != nil {
		return nil, badRequest(textTagsNotJSON)
	}
	if len(raw) > MaxTags {
		return nil, badRequest(fmt.Sprintf("%s: at most %d", textTooManyTags, MaxTags))
	}
	t := make(Tags, len(raw))
	for k, v := range raw {
		c, err := canonicalJSON(v)
		if err != nil {
			return nil, badRequest(fmt.Sprintf("tags.%s: %v", k, err))
		}
		t[k] = c
	}
	return t, nil
}

// canonicalJSON encodes a decoded value (numbers as json.Number) as
// compact JSON: object keys sorted, HTML characters and DEL left alone
// except that DEL is escaped so the text is printable.
func canonicalJSON(v any) (json.RawMessage, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	out := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	// DEL can only stand inside a string here; escaped, the text is
	// printable and means the same.
	out = bytes.ReplaceAll(out, []byte{0x7f}, []byte(`\u007f`))
	return json.RawMessage(out), nil
}

// normalizeTags checks a registration's tags and rewrites canary and
// load_balancing_weight to the types Envoy's SDS schema requires (one bad
// host makes Envoy reject a whole answer). missing lists the required
// tags that are absent (the original answers those with an empty body).
func normalizeTags(t Tags) (missing []string, err error) {
	for _, k := range requiredTags {
		if _, ok := t[k]; !ok {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		return missing, nil
	}
	if v := t[TagAZ]; len(v) == 0 || v[0] != '"' {
		return nil, badRequest(textAZNotString)
	}
	if v, ok := t[TagCanary]; ok {
		b, ok := parseCanary(v)
		if !ok {
			return nil, badRequest(textCanaryNotBool)
		}
		t[TagCanary] = json.RawMessage(strconv.FormatBool(b))
	}
	if v, ok := t[TagWeight]; ok {
		w, ok := parseTagWeight(v)
		if !ok {
			return nil, badRequest(textWeightInvalid)
		}
		t[TagWeight] = json.RawMessage(strconv.Itoa(w))
	}
	return nil, nil
}

// parseCanary accepts a JSON boolean, the numbers 0 and 1, and the
// strings true/false/1/0/yes/no (any case).
func parseCanary(v json.RawMessage) (bool, bool) {
	var x any
	dec := json.NewDecoder(bytes.NewReader(v))
	dec.UseNumber()
	if dec.Decode(&x) != nil {
		return false, false
	}
	switch x := x.(type) {
	case bool:
		return x, true
	case json.Number:
		switch x.String() {
		case "0":
			return false, true
		case "1":
			return true, true
		}
	case string:
		switch strings.ToLower(strings.TrimSpace(x)) {
		case "true", "1", "yes":
			return true, true
		case "false", "0", "no":
			return false, true
		}
	}
	return false, false
}

// parseTagWeight accepts an integer 1–100 given as a JSON number (10 or
// 10.0) or as a string holding an integer ("10").
func parseTagWeight(v json.RawMessage) (int, bool) {
	var x any
	dec := json.NewDecoder(bytes.NewReader(v))
	dec.UseNumber()
	if dec.Decode(&x) != nil {
		return 0, false
	}
	switch x := x.(type) {
	case json.Number:
		f, err := x.Float64()
		if err != nil || f != math.Trunc(f) || f < 1 || f > 100 {
			return 0, false
		}
		return int(f), true
	case string:
		return parseWeight(x)
	}
	return 0, false
}

// parseWeight reads a weight as the form field carries it: an integer
// 1–100, spaces around it allowed.
func parseWeight(s string) (int, bool) {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < 1 || n > 100 {
		return 0, false
	}
	return n, true
}

// merge returns old with every tag of t set over it: keys t does not
// name keep their old value.
func merge(old, t Tags) Tags {
	out := make(Tags, len(old)+len(t))
	for k, v := range old {
		out[k] = v
	}
	for k, v := range t {
		out[k] = v
	}
	return out
}

// encodeTagName makes a tag name a valid meta key suffix: letters,
// digits, '_' and '-' stand for themselves; any other byte, '.' included,
// is '.' and two lower-case hex digits.
func encodeTagName(name string) string {
	var b strings.Builder
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, ".%02x", c)
	}
	return b.String()
}

// decodeTagName reverses encodeTagName; ok is false for text it cannot
// have produced.
func decodeTagName(s string) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '.' {
			b.WriteByte(c)
			continue
		}
		if i+2 >= len(s) {
			return "", false
		}
		n, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
		if err != nil || s[i+1:i+3] != fmt.Sprintf("%02x", n) {
			return "", false
		}
		b.WriteByte(byte(n))
		i += 2
	}
	name := b.String()
	return name, encodeTagName(name) == s
}

// printable reports whether s can be stored as a meta value as it is.
func printable(s string) bool {
	if len(s) > MaxTagValueLen {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

// toMeta writes t into meta under the tag scheme, after removing every
// tag key meta held. It fails naming the first tag the scheme cannot hold.
func toMeta(meta map[string]string, t Tags) error {
	for k := range meta {
		if strings.HasPrefix(k, metaTag) || strings.HasPrefix(k, metaTagJSON) {
			delete(meta, k)
		}
	}
	if len(t) > MaxTags {
		return badRequest(fmt.Sprintf("%s: at most %d, earlier tags included", textTooManyTags, MaxTags))
	}
	names := make([]string, 0, len(t))
	for k := range t {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		v := t[k]
		enc := encodeTagName(k)
		if len(enc) > MaxTagNameLen {
			return badRequest(fmt.Sprintf("%s: %.40q (at most %d bytes once encoded)", textTagNameTooLong, k, MaxTagNameLen))
		}
		if v[0] == '"' {
			var s string
			if json.Unmarshal(v, &s) == nil && printable(s) {
				meta[metaTag+enc] = s
				continue
			}
		}
		if len(v) > MaxTagValueLen {
			return badRequest(fmt.Sprintf("tags.%.40s: value longer than %d bytes", k, MaxTagValueLen))
		}
		meta[metaTagJSON+enc] = string(v)
	}
	return nil
}

// fromMeta reads the tags the scheme stored in meta; keys it cannot
// decode are skipped.
func fromMeta(meta map[string]string) Tags {
	t := Tags{}
	for k, v := range meta {
		switch {
		case strings.HasPrefix(k, metaTagJSON):
			if name, ok := decodeTagName(k[len(metaTagJSON):]); ok && json.Valid([]byte(v)) {
				t[name] = json.RawMessage(v)
			}
		case strings.HasPrefix(k, metaTag):
			if name, ok := decodeTagName(k[len(metaTag):]); ok {
				t[name], _ = canonicalJSON(v)
			}
		}
	}
	return t
}
