package consulapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
)

// MaxBodyBytes bounds a request body.
const MaxBodyBytes = 256 << 10

// decodeError is a body the decoder could not read, naming where.
type decodeError struct {
	path string
	msg  string
}

func (e *decodeError) Error() string {
	if e.path == "" {
		return e.msg
	}
	return e.path + ": " + e.msg
}

// decodeBody reads a JSON body into v, a pointer to a struct, as leniently
// as Consul does: an object's keys match struct fields without regard to
// case, underscores or hyphens ("deregister_critical_service_after",
// "DeregisterCriticalServiceAfter" and "deregistercriticalserviceafter"
// are one field), and a field's `consul` tag lists other names it answers
// to. Keys of maps (Meta, Header, ...) are data and kept verbatim. Unknown
// keys are ignored, as Consul ignores them; a value of the wrong type is a
// *decodeError naming the field. An empty body leaves v unchanged.
func decodeBody(r io.Reader, v any) error {
	b, err := io.ReadAll(io.LimitReader(r, MaxBodyBytes+1))
	if err != nil {
		return &decodeError{msg: "reading body: " + err.Error()}
	}
	if len(b) > MaxBodyBytes {
		return &decodeError{msg: fmt.Sprintf("body larger than %d bytes", MaxBodyBytes)}
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	return decodeBytes(b, v)
}

func decodeBytes(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var raw any
	if err := dec.Decode(&raw); err != nil {
		return &decodeError{msg: "invalid JSON: " + err.Error()}
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return &decodeError{msg: "invalid JSON: data after the value"}
	}
	return assign(reflect.ValueOf(v).Elem(), raw, "")
}

var (
	durationType = reflect.TypeFor[duration]()
	rawType      = reflect.TypeFor[json.RawMessage]()
)

// assign stores raw, a value decoded by encoding/json with UseNumber, in
// dst. It recurses only along dst's type, so the depth is bounded by the
// wire types, whatever the body nests.
func assign(dst reflect.Value, raw any, path string) error {
	if raw == nil {
		dst.SetZero()
		return nil
	}
	switch dst.Type() {
	case durationType:
		d, err := parseDuration(raw)
		if err != nil {
			return &decodeError{path: path, msg: err.Error()}
		}
		dst.Set(reflect.ValueOf(d))
		return nil
	case rawType:
		b, err := json.Marshal(raw)
		if err != nil {
			return &decodeError{path: path, msg: err.Error()}
		}
		dst.SetBytes(b)
		return nil
	}
	switch dst.Kind() {
	case reflect.Pointer:
		p := reflect.New(dst.Type().Elem())
		if err := assign(p.Elem(), raw, path); err != nil {
			return err
		}
		dst.Set(p)
		return nil
	case reflect.Struct:
		obj, ok := raw.(map[string]any)
		if !ok {
			return typeError(path, "an object", raw)
		}
		return assignStruct(dst, obj, path)
	case reflect.Map:
		obj, ok := raw.(map[string]any)
		if !ok {
			return typeError(path, "an object", raw)
		}
		m := reflect.MakeMapWithSize(dst.Type(), len(obj))
		for _, k := range sortedKeys(obj) {
			ev := reflect.New(dst.Type().Elem()).Elem()
			if err := assign(ev, obj[k], path+"."+k); err != nil {
				return err
			}
			m.SetMapIndex(reflect.ValueOf(k), ev)
		}
		dst.Set(m)
		return nil
	case reflect.Slice:
		arr, ok := raw.([]any)
		if !ok {
			// One value where a list is expected is a list of one, as
			// Consul reads Header values and single tags.
			if _, isObj := raw.(map[string]any); isObj {
				return typeError(path, "an array", raw)
			}
			arr = []any{raw}
		}
		s := reflect.MakeSlice(dst.Type(), len(arr), len(arr))
		for i, e := range arr {
			if err := assign(s.Index(i), e, path+"["+strconv.Itoa(i)+"]"); err != nil {
				return err
			}
		}
		dst.Set(s)
		return nil
	case reflect.String:
		s, ok := raw.(string)
		if !ok {
			return typeError(path, "a string", raw)
		}
		dst.SetString(s)
		return nil
	case reflect.Bool:
		switch x := raw.(type) {
		case bool:
			dst.SetBool(x)
		case string:
			b, err := strconv.ParseBool(x)
			if err != nil {
				return typeError(path, "a boolean", raw)
			}
			dst.SetBool(b)
		default:
			return typeError(path, "a boolean", raw)
		}
		return nil
	case reflect.Int, reflect.Int64, reflect.Int32:
		n, ok := raw.(json.Number)
		if !ok {
			return typeError(path, "an integer", raw)
		}
		i, err := strconv.ParseInt(n.String(), 10, 64)
		if err != nil || dst.OverflowInt(i) {
			return typeError(path, "an integer", raw)
		}
		dst.SetInt(i)
		return nil
	case reflect.Interface:
		dst.Set(reflect.ValueOf(raw))
		return nil
	}
	return &decodeError{path: path, msg: "unsupported field type " + dst.Type().String()}
}

// assignStruct matches obj's keys to dst's fields; see decodeBody.
func assignStruct(dst reflect.Value, obj map[string]any, path string) error {
	t := dst.Type()
	// Keys in a fixed order, so that two spellings of one field ("Name"
	// and "name") always resolve the same way: the last in order wins.
	for _, k := range sortedKeys(obj) {
		i := fieldIndex(t, k)
		if i < 0 {
			continue
		}
		name := t.Field(i).Name
		if path != "" {
			name = path + "." + name
		}
		if err := assign(dst.Field(i), obj[k], name); err != nil {
			return err
		}
	}
	return nil
}

// fieldIndex finds the exported field of t that key names, or -1.
func fieldIndex(t reflect.Type, key string) int {
	k := foldKey(key)
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		if foldKey(f.Name) == k {
			return i
		}
		if alias, ok := f.Tag.Lookup("consul"); ok {
			for a := range strings.SplitSeq(alias, ",") {
				if foldKey(a) == k {
					return i
				}
			}
		}
	}
	return -1
}

// foldKey is the form in which keys compare: lower case without '_' and '-'.
func foldKey(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '_' || c == '-':
		case c >= 'A' && c <= 'Z':
			b.WriteByte(c + 'a' - 'A')
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func typeError(path, want string, raw any) error {
	got := "a " + jsonKind(raw)
	return &decodeError{path: path, msg: "must be " + want + ", not " + got}
}

func jsonKind(raw any) string {
	switch raw.(type) {
	case string:
		return "string"
	case json.Number:
		return "number"
	case bool:
		return "boolean"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return "null"
}

// duration is a Consul duration field: a Go duration string ("10s",
// "1m30s") or a number of nanoseconds.
type duration time.Duration

func parseDuration(raw any) (duration, error) {
	switch x := raw.(type) {
	case string:
		if x == "" {
			return 0, nil
		}
		d, err := time.ParseDuration(x)
		if err != nil {
			return 0, fmt.Errorf("must be a duration such as \"10s\", not %q", x)
		}
		return duration(d), nil
	case json.Number:
		n, err := strconv.ParseInt(x.String(), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("must be a duration such as \"10s\" or a number of nanoseconds, not %s", x)
		}
		return duration(n), nil
	}
	return 0, fmt.Errorf("must be a duration such as \"10s\", not a %s", jsonKind(raw))
}

// String formats d the way Consul shows durations ("10s", "1m0s"); zero is "".
func (d duration) String() string {
	if d == 0 {
		return ""
	}
	return time.Duration(d).String()
}
