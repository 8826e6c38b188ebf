package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/rosterhq/roster/internal/registry"
)

// MaxBodyBytes bounds a request body (a snapshot restore has its own bound).
const MaxBodyBytes = 256 << 10

// instanceBody is the wire form of a registration. Durations are strings
// ("10s") so that a bad one is reported with its field name.
type instanceBody struct {
	Service         string            `json:"service"`
	ID              string            `json:"id"`
	Address         string            `json:"address"`
	Port            int               `json:"port"`
	Tags            []string          `json:"tags"`
	Meta            map[string]string `json:"meta"`
	Weight          int               `json:"weight"`
	Priority        int               `json:"priority"`
	Zone            string            `json:"zone"`
	Region          string            `json:"region"`
	Canary          bool              `json:"canary"`
	Revision        string            `json:"revision"`
	Repo            string            `json:"repo"`
	TTL             string            `json:"ttl"`
	DeregisterAfter string            `json:"deregister_after"`
	Checks          []checkBody       `json:"checks"`

	// Read-only fields, accepted so a client may send back what it read.
	Health      string `json:"health"`
	CreateIndex uint64 `json:"create_index"`
	ModifyIndex uint64 `json:"modify_index"`
}

type checkBody struct {
	ID                     string `json:"id"`
	Name                   string `json:"name"`
	Type                   string `json:"type"`
	Target                 string `json:"target"`
	Interval               string `json:"interval"`
	Timeout                string `json:"timeout"`
	TTL                    string `json:"ttl"`
	FailuresBeforeCritical int    `json:"failures_before_critical"`
	SuccessesBeforePassing int    `json:"successes_before_passing"`
	DeregisterAfter        string `json:"deregister_after"`
	Status                 string `json:"status"`
	Output                 string `json:"output"`
	CriticalSince          string `json:"critical_since"`
}

// decodeJSON reads a bounded JSON body into v, rejecting unknown fields
// and trailing data, and names the offending field where it can.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	body := http.MaxBytesReader(w, r.Body, MaxBodyBytes)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return bodyError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return badRequest("body", "unexpected data after the JSON value")
	}
	return nil
}

func bodyError(err error) error {
	var (
		syn   *json.SyntaxError
		typ   *json.UnmarshalTypeError
		large *http.MaxBytesError
	)
	switch {
	case errors.As(err, &large):
		return badRequest("body", fmt.Sprintf("larger than %d bytes", large.Limit))
	case errors.Is(err, io.EOF):
		return badRequest("body", "empty; a JSON object is required")
	case errors.As(err, &syn):
		return badRequest("body", fmt.Sprintf("invalid JSON at offset %d", syn.Offset))
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			field = "body"
		}
		return badRequest(field, "must be a JSON "+jsonType(typ.Type)+", not "+typ.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return badRequest(name, "unknown field")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("body", "truncated JSON")
	}
	return badRequest("body", err.Error())
}

// toInstance converts a registration body, reporting every bad duration.
func (b *instanceBody) toInstance(v *registry.ValidationError) *registry.Instance {
	in := &registry.Instance{
		Service: b.Service, ID: b.ID, Address: b.Address, Port: b.Port,
		Tags: b.Tags, Meta: b.Meta, Weight: b.Weight, Priority: b.Priority,
		Zone: b.Zone, Region: b.Region, Canary: b.Canary, Revision: b.Revision, Repo: b.Repo,
	}
	for i, cb := range b.Checks {
		f := "checks[" + strconv.Itoa(i) + "]."
		c := registry.Check{
			ID: cb.ID, Name: cb.Name, Type: registry.CheckType(cb.Type), Target: cb.Target,
			Interval: duration(v, f+"interval", cb.Interval), Timeout: duration(v, f+"timeout", cb.Timeout),
			TTL:                    duration(v, f+"ttl", cb.TTL),
			FailuresBeforeCritical: cb.FailuresBeforeCritical, SuccessesBeforePassing: cb.SuccessesBeforePassing,
			DeregisterAfter: duration(v, f+"deregister_after", cb.DeregisterAfter),
			Status:          registry.Health(cb.Status), Output: cb.Output,
		}
		in.Checks = append(in.Checks, c)
	}
	if b.TTL != "" || b.DeregisterAfter != "" {
		if in.TTLCheck() != nil {
			v.Add("ttl", "give either ttl or a check of type ttl, not both")
		}
		ttl := duration(v, "ttl", b.TTL)
		if ttl == 0 && b.TTL == "" {
			v.Add("ttl", "is required with deregister_after")
		}
		in.Checks = append(in.Checks, registry.Check{ID: registry.TTLCheckID, Type: registry.CheckTTL,
			TTL: ttl, DeregisterAfter: duration(v, "deregister_after", b.DeregisterAfter)})
	}
	return in
}

func duration(v *registry.ValidationError, field, s string) registry.Duration {
	if s == "" {
		return 0
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		v.Add(field, fmt.Sprintf("must be a duration such as \"10s\", not %q", s))
		return 0
	}
	return registry.Duration(d)
}

// encodeJSON marshals v with a trailing newline.
func encodeJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// jsonType names the JSON type a Go type decodes from.
func jsonType(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Slice, reflect.Array:
		return "array"
	case reflect.Map, reflect.Struct:
		return "object"
	}
	return t.String()
}
