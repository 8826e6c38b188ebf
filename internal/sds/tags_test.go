package sds

import (
	"encoding/json"
	"maps"
	"strings"
	"testing"

	"github.com/rosterhq/roster/internal/registry"
)

func TestParseTags(t *testing.T) {
	tests := []struct {
		name    string
		text    string
		want    map[string]string // tag -> canonical JSON
		wantErr string
	}{
		{"object", `{"az":"a","n":1.50,"o":{"b":1,"a":[true,null]}}`,
			map[string]string{"az": `"a"`, "n": `1.50`, "o": `{"a":[true,null],"b":1}`}, ""},
		{"html and unicode kept", `{"k":"<a&b> é \u00e9"}`, map[string]string{"k": `"<a&b> é é"`}, ""},
		{"DEL escaped", "{\"k\":\"a\x7fb\"}", map[string]string{"k": `"a\u007fb"`}, ""},
		{"control escaped", `{"k":"a\nb"}`, map[string]string{"k": `"a\nb"`}, ""},
		{"empty object", `{}`, map[string]string{}, ""},
		{"spaces around", " \n{\"a\":1} ", map[string]string{"a": "1"}, ""},
		{"not json", `{"az":`, nil, textTagsNotJSON},
		{"python repr", `{'az': 'a'}`, nil, textTagsNotJSON},
		{"trailing data", `{} {}`, nil, textTagsNotJSON},
		{"array", `["az","instance_id","region"]`, nil, textTagsNotObject},
		{"string", `"az instance_id region"`, nil, textTagsNotObject},
		{"null", `null`, nil, textTagsNotObject},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseTags(tc.text)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("parseTags(%q) = %v, %v; want error %q", tc.text, got, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseTags(%q): %v", tc.text, err)
			}
			gs := map[string]string{}
			for k, v := range got {
				gs[k] = string(v)
			}
			if !maps.Equal(gs, tc.want) {
				t.Errorf("parseTags(%q) = %v, want %v", tc.text, gs, tc.want)
			}
		})
	}
}

func TestNormalizeTags(t *testing.T) {
	base := `"az":"us-east-1a","instance_id":"i-1","region":"us-east-1"`
	tests := []struct {
		name        string
		text        string
		missing     string
		wantErr     string
		canary      string // canonical JSON after, "" for absent
		weight      string
		emptyBodied bool
	}{
		{name: "minimal", text: `{` + base + `}`},
		{name: "missing az", text: `{"instance_id":1,"region":2}`, missing: "az"},
		{name: "missing all", text: `{}`, missing: "az,instance_id,region"},
		{name: "instance_id and region any type", text: `{"az":"a","instance_id":7,"region":null}`},
		{name: "az not a string", text: `{"az":1,"instance_id":1,"region":1}`, wantErr: textAZNotString},
		{name: "canary bool", text: `{` + base + `,"canary":true}`, canary: "true"},
		{name: "canary string", text: `{` + base + `,"canary":"False"}`, canary: "false"},
		{name: "canary number", text: `{` + base + `,"canary":1}`, canary: "true"},
		{name: "canary yes", text: `{` + base + `,"canary":" yes "}`, canary: "true"},
		{name: "canary 2", text: `{` + base + `,"canary":2}`, wantErr: textCanaryNotBool},
		{name: "canary null", text: `{` + base + `,"canary":null}`, wantErr: textCanaryNotBool},
		{name: "canary word", text: `{` + base + `,"canary":"maybe"}`, wantErr: textCanaryNotBool},
		{name: "weight int", text: `{` + base + `,"load_balancing_weight":10}`, weight: "10"},
		{name: "weight float integral", text: `{` + base + `,"load_balancing_weight":10.0}`, weight: "10"},
		{name: "weight exponent", text: `{` + base + `,"load_balancing_weight":1e2}`, weight: "100"},
		{name: "weight string", text: `{` + base + `,"load_balancing_weight":" 7 "}`, weight: "7"},
		{name: "weight 0", text: `{` + base + `,"load_balancing_weight":0}`, wantErr: textWeightInvalid},
		{name: "weight 101", text: `{` + base + `,"load_balancing_weight":101}`, wantErr: textWeightInvalid},
		{name: "weight fraction", text: `{` + base + `,"load_balancing_weight":1.5}`, wantErr: textWeightInvalid},
		{name: "weight word", text: `{` + base + `,"load_balancing_weight":"heavy"}`, wantErr: textWeightInvalid},
		{name: "weight bool", text: `{` + base + `,"load_balancing_weight":true}`, wantErr: textWeightInvalid},
		{name: "weight huge", text: `{` + base + `,"load_balancing_weight":1e400}`, wantErr: textWeightInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tags, err := parseTags(tc.text)
			if err != nil {
				t.Fatal(err)
			}
			missing, err := normalizeTags(tags)
			if got := strings.Join(missing, ","); got != tc.missing {
				t.Fatalf("missing = %q, want %q", got, tc.missing)
			}
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.missing != "" {
				return
			}
			if got := string(tags[TagCanary]); got != tc.canary {
				t.Errorf("canary = %q, want %q", got, tc.canary)
			}
			if got := string(tags[TagWeight]); got != tc.weight {
				t.Errorf("weight = %q, want %q", got, tc.weight)
			}
		})
	}
}

func TestTagNameEncoding(t *testing.T) {
	tests := []struct{ name, enc string }{
		{"az", "az"},
		{"instance_id", "instance_id"},
		{"load-balancing", "load-balancing"},
		{"a.b", "a.2eb"},
		{"a b/c", "a.20b.2fc"},
		{"", ""},
		{"é", ".c3.a9"},
	}
	for _, tc := range tests {
		if got := encodeTagName(tc.name); got != tc.enc {
			t.Errorf("encodeTagName(%q) = %q, want %q", tc.name, got, tc.enc)
		}
		if got, ok := decodeTagName(tc.enc); !ok || got != tc.name {
			t.Errorf("decodeTagName(%q) = %q, %v, want %q", tc.enc, got, ok, tc.name)
		}
	}
	for _, bad := range []string{"a.2", "a.zz", "a.2E", "a.61", "a."} {
		if got, ok := decodeTagName(bad); ok {
			t.Errorf("decodeTagName(%q) = %q, want refusal", bad, got)
		}
	}
}

func TestMetaRoundTrip(t *testing.T) {
	text := `{"az":"us-east-1a","instance_id":"i-1","region":"us-east-1","canary":false,` +
		`"load_balancing_weight":5,"a.b":"x y","nested":{"k":[1,"2"]},"nl":"a\nb","num":1.50,` +
		`"empty":"","null":null,"long":"` + strings.Repeat("x", MaxTagValueLen) + `"}`
	tags, err := parseTags(text)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := normalizeTags(tags); err != nil {
		t.Fatal(err)
	}
	meta := map[string]string{"version": "v2", "sds.tag.stale": "gone"}
	if err := toMeta(meta, tags); err != nil {
		t.Fatal(err)
	}
	if meta["version"] != "v2" {
		t.Error("toMeta removed a key of another API")
	}
	if _, ok := meta["sds.tag.stale"]; ok {
		t.Error("toMeta kept a tag that is no longer there")
	}
	if meta["sds.tag.az"] != "us-east-1a" || meta["sds.tagj.num"] != "1.50" || meta["sds.tagj.nl"] != `"a\nb"` {
		t.Errorf("meta = %v", meta)
	}
	in := &registry.Instance{Service: "web", ID: "10.0.0.1", Address: "10.0.0.1", Port: 80, Meta: meta}
	if err := registry.Normalize(in); err != nil {
		t.Fatalf("the registry refuses the meta: %v", err)
	}
	got := fromMeta(meta)
	if !maps.EqualFunc(got, tags, func(a, b json.RawMessage) bool { return string(a) == string(b) }) {
		t.Errorf("fromMeta = %v, want %v", got, tags)
	}
}

func TestToMetaLimits(t *testing.T) {
	long := strings.Repeat("k", MaxTagNameLen+1)
	if err := toMeta(map[string]string{}, Tags{long: json.RawMessage(`1`)}); err == nil {
		t.Error("a tag name too long for a meta key was accepted")
	}
	if err := toMeta(map[string]string{}, Tags{"k": json.RawMessage(`"` + strings.Repeat("\\n", MaxTagValueLen) + `"`)}); err == nil {
		t.Error("a value too long for a meta value was accepted")
	}
	many := make([]string, 0, MaxTags+1)
	for i := range MaxTags + 1 {
		many = append(many, `"k`+strings.Repeat("x", i)+`":1`)
	}
	if _, err := parseTags("{" + strings.Join(many, ",") + "}"); err == nil {
		t.Error("more than MaxTags tags were accepted")
	}
	merged := Tags{}
	for i := range MaxTags + 1 {
		merged[strings.Repeat("k", i+1)] = json.RawMessage(`1`)
	}
	if err := toMeta(map[string]string{}, merged); err == nil {
		t.Error("more than MaxTags merged tags were accepted")
	}
}

func TestMerge(t *testing.T) {
	old := Tags{"az": json.RawMessage(`"a"`), "load_balancing_weight": json.RawMessage(`10`)}
	got := merge(old, Tags{"az": json.RawMessage(`"b"`), "x": json.RawMessage(`1`)})
	want := map[string]string{"az": `"b"`, "load_balancing_weight": "10", "x": "1"}
	for k, v := range want {
		if string(got[k]) != v {
			t.Errorf("merge: %s = %s, want %s", k, got[k], v)
		}
	}
	if len(got) != len(want) || string(old["az"]) != `"a"` {
		t.Errorf("merge = %v (old now %v)", got, old)
	}
}
