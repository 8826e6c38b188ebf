package e2e

// The discovery-service (v1 SDS) API against the real binary, written from
// its documented behaviour: docs/sds.md and the behaviours the original
// service's own tests check (numbered "case N" below), plus the gaps they
// leave: the expiry boundary, cache staleness, X-Forwarded-For spoofing,
// a second port on one IP, weight types, and Envoy's SDS schema, which
// every GET answer in this file is checked against.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rosterhq/roster/internal/testutil"
)

// sdsResp is one answer of the SDS API.
type sdsResp struct {
	status int
	header http.Header
	body   []byte
}

func (r sdsResp) String() string { return fmt.Sprintf("%d %s", r.status, bytes.TrimSpace(r.body)) }

// sdsDo sends a request with an URL-encoded form (when form is not nil)
// and headers as name, value pairs.
func sdsDo(t *testing.T, method, u string, form url.Values, hdr ...string) sdsResp {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(bound(t), method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := testutil.Client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return sdsResp{status: resp.StatusCode, header: resp.Header, body: b}
}

func sdsMust(t *testing.T, want int, method, u string, form url.Values, hdr ...string) sdsResp {
	t.Helper()
	r := sdsDo(t, method, u, form, hdr...)
	if r.status != want {
		t.Fatalf("%s %s = %s, want %d", method, u, r, want)
	}
	return r
}

// sdsForm is a valid registration with changes applied.
func sdsForm(ip string, mods ...func(url.Values)) url.Values {
	f := url.Values{
		"ip":                {ip},
		"port":              {"1000"},
		"revision":          {"abc123"},
		"service_repo_name": {"bar"},
		"tags":              {`{"az":"us-east-1a","instance_id":"i-1","region":"us-east-1"}`},
	}
	for _, m := range mods {
		m(f)
	}
	return f
}

func sdsSet(k, v string) func(url.Values) { return func(f url.Values) { f.Set(k, v) } }
func sdsDel(k string) func(url.Values)    { return func(f url.Values) { f.Del(k) } }

type sdsHost struct {
	Service         string         `json:"service"`
	IPAddress       string         `json:"ip_address"`
	ServiceRepoName *string        `json:"service_repo_name"`
	Port            int            `json:"port"`
	Revision        string         `json:"revision"`
	LastCheckIn     string         `json:"last_check_in"`
	Tags            map[string]any `json:"tags"`
}

type sdsAnswer struct {
	Service         string    `json:"service"`
	ServiceRepoName string    `json:"service_repo_name"`
	Env             string    `json:"env"`
	Hosts           []sdsHost `json:"hosts"`
}

// sdsGet GETs an answer, fails the test unless it is 200 and passes
// Envoy's SDS schema, and decodes it.
func sdsGet(t *testing.T, u string) (sdsAnswer, []byte) {
	t.Helper()
	r := sdsMust(t, http.StatusOK, "GET", u, nil)
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("GET %s: Content-Type %q", u, ct)
	}
	if err := envoySDSSchema(r.body); err != nil {
		t.Fatalf("GET %s fails Envoy's SDS schema: %v\n%s", u, err, r.body)
	}
	var a sdsAnswer
	if err := json.Unmarshal(r.body, &a); err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	return a, r.body
}

// envoySDSSchema checks an answer as Envoy's SDS_SCHEMA does: an object
// with a required "hosts" array whose items are objects with a string
// "ip_address" and an integer "port"; "tags", when present, is an object
// whose "az" is a string, "canary" a boolean and "load_balancing_weight"
// an integer from 1 to 100. Other properties are allowed.
func envoySDSSchema(body []byte) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var top any
	if err := dec.Decode(&top); err != nil {
		return err
	}
	obj, ok := top.(map[string]any)
	if !ok {
		return fmt.Errorf("answer is not an object")
	}
	hosts, ok := obj["hosts"].([]any)
	if !ok {
		return fmt.Errorf("hosts is missing or not an array")
	}
	isInt := func(v any) (int64, bool) {
		n, ok := v.(json.Number)
		if !ok {
			return 0, false
		}
		i, err := n.Int64()
		return i, err == nil
	}
	for i, hv := range hosts {
		h, ok := hv.(map[string]any)
		if !ok {
			return fmt.Errorf("hosts[%d] is not an object", i)
		}
		if _, ok := h["ip_address"].(string); !ok {
			return fmt.Errorf("hosts[%d].ip_address is missing or not a string", i)
		}
		if _, ok := isInt(h["port"]); !ok {
			return fmt.Errorf("hosts[%d].port is missing or not an integer", i)
		}
		tv, ok := h["tags"]
		if !ok {
			continue
		}
		tags, ok := tv.(map[string]any)
		if !ok {
			return fmt.Errorf("hosts[%d].tags is not an object", i)
		}
		if v, ok := tags["az"]; ok {
			if _, ok := v.(string); !ok {
				return fmt.Errorf("hosts[%d].tags.az is not a string", i)
			}
		}
		if v, ok := tags["canary"]; ok {
			if _, ok := v.(bool); !ok {
				return fmt.Errorf("hosts[%d].tags.canary is not a boolean", i)
			}
		}
		if v, ok := tags["load_balancing_weight"]; ok {
			if w, ok := isInt(v); !ok || w < 1 || w > 100 {
				return fmt.Errorf("hosts[%d].tags.load_balancing_weight %v is not an integer from 1 to 100", i, v)
			}
		}
	}
	return nil
}

// sdsErrorText is the "error" of a JSON error body ("" when none).
func sdsErrorText(t *testing.T, r sdsResp) string {
	t.Helper()
	var e struct {
		Error string `json:"error"`
	}
	if err := json.Unmarshal(r.body, &e); err != nil {
		t.Fatalf("body %q is not JSON: %v", r.body, err)
	}
	return e.Error
}

func startSDSAgent(t *testing.T, args ...string) *testutil.Agent {
	t.Helper()
	return startAgent(t, testutil.AgentOptions{Dev: true, Args: args})
}

// Python's str(datetime.utcnow()): microseconds only when not zero.
var checkInFormat = regexp.MustCompile(`^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d{6})?$`)

func parseCheckInTime(t *testing.T, s string) time.Time {
	t.Helper()
	if !checkInFormat.MatchString(s) {
		t.Fatalf("last_check_in %q is not in the original's format", s)
	}
	v, err := time.ParseInLocation("2006-01-02 15:04:05.999999", s, time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// Cases 1 and 3: unknown service and repo.
func TestSDSEmptyAnswers(t *testing.T) {
	a := startSDSAgent(t)
	_, body := sdsGet(t, a.URL+"/v1/registration/foo")
	if want := `{"service":"foo","env":"development","hosts":[]}`; string(bytes.TrimSpace(body)) != want {
		t.Errorf("unknown service = %s, want %s", body, want)
	}
	_, body = sdsGet(t, a.URL+"/v1/registration/repo/foo")
	if want := `{"service_repo_name":"foo","env":"development","hosts":[]}`; string(bytes.TrimSpace(body)) != want {
		t.Errorf("unknown repo = %s, want %s", body, want)
	}
}

// Cases 2, 6, 24, 29 and 34 (times are UTC whatever the local zone):
// registration and the listed fields.
func TestSDSRegisterAndList(t *testing.T) {
	a := startAgent(t, testutil.AgentOptions{Dev: true, Args: []string{"-sds-env", "production"}, Env: []string{"TZ=America/Chicago"}})
	before := time.Now().UTC().Add(-time.Second)
	r := sdsMust(t, 200, "POST", a.URL+"/v1/registration/myservice", sdsForm("10.10.10.10"))
	if strings.TrimSpace(string(r.body)) != "{}" {
		t.Errorf("registration body = %s, want {}", r.body)
	}
	// Repo is optional.
	sdsMust(t, 200, "POST", a.URL+"/v1/registration/myservice", sdsForm("10.10.10.2", sdsDel("service_repo_name"),
		sdsSet("tags", `{"az":"us-east-1b","instance_id":"i-2","region":"us-east-1","canary":true,"load_balancing_weight":40,"team":{"name":"x","size":3}}`)))
	after := time.Now().UTC().Add(time.Second)

	ans, body := sdsGet(t, a.URL+"/v1/registration/myservice")
	if ans.Service != "myservice" || ans.Env != "production" || len(ans.Hosts) != 2 {
		t.Fatalf("answer = %s", body)
	}
	var raw struct {
		Hosts []map[string]json.RawMessage `json:"hosts"`
	}
	_ = json.Unmarshal(body, &raw)
	for i, h := range raw.Hosts {
		if len(h) != 7 {
			t.Errorf("host %d has %d fields, want the 7 of the original: %v", i, len(h), h)
		}
	}
	h2, h10 := ans.Hosts[0], ans.Hosts[1]
	if h10.IPAddress != "10.10.10.10" || h10.Port != 1000 || h10.Revision != "abc123" || h10.Service != "myservice" ||
		h10.ServiceRepoName == nil || *h10.ServiceRepoName != "bar" {
		t.Errorf("host = %+v", h10)
	}
	if h2.ServiceRepoName == nil || *h2.ServiceRepoName != "" {
		t.Errorf("host without repo: service_repo_name = %v, want \"\"", h2.ServiceRepoName)
	}
	for _, h := range ans.Hosts {
		at := parseCheckInTime(t, h.LastCheckIn)
		if at.Before(before) || at.After(after) {
			t.Errorf("last_check_in %v not within the registration (%v..%v)", at, before, after)
		}
	}
	wantTags := map[string]any{"az": "us-east-1b", "instance_id": "i-2", "region": "us-east-1", "canary": true,
		"load_balancing_weight": float64(40), "team": map[string]any{"name": "x", "size": float64(3)}}
	if got, _ := json.Marshal(h2.Tags); string(got) != mustJSON(t, wantTags) {
		t.Errorf("tags = %s, want %s", got, mustJSON(t, wantTags))
	}
	// An unchanged set gives the same bytes.
	if _, again := sdsGet(t, a.URL+"/v1/registration/myservice"); !bytes.Equal(again, body) {
		t.Errorf("answers differ:\n%s\n%s", body, again)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Cases 5, 16, 25-28, the original's 500s (now 400 with a JSON error),
// and the gap of weight and canary types: every refusal writes nothing.
func TestSDSRegisterValidation(t *testing.T) {
	a := startSDSAgent(t)
	base := `"az":"a","instance_id":"i","region":"r"`
	tests := []struct {
		name string
		form url.Values
		// body: "{}" exactly, or "error" for a JSON error, or the error text
		body string
	}{
		{"every field 0 (case 5)", url.Values{"ip": {"0"}, "port": {"0"}, "revision": {"0"}, "service_repo_name": {"0"}, "tags": {"0"}}, "{}"},
		{"neither ip nor auto_ip (case 16)", sdsForm("", sdsDel("ip")), "{}"},
		{"ip invalid.ip.address (case 25)", sdsForm("invalid.ip.address"), "{}"},
		{"ip 555.555.555.555 (case 25)", sdsForm("555.555.555.555"), "{}"},
		{"port -1 (case 26)", sdsForm("10.0.0.1", sdsSet("port", "-1")), "{}"},
		{"port test (case 26, a 500 in the original)", sdsForm("10.0.0.1", sdsSet("port", "test")), "error"},
		{"port above 65535", sdsForm("10.0.0.1", sdsSet("port", "70000")), "error"},
		{"no revision (case 27)", sdsForm("10.0.0.1", sdsDel("revision")), "{}"},
		{"no az (case 28)", sdsForm("10.0.0.1", sdsSet("tags", `{"instance_id":"i","region":"r"}`)), "{}"},
		{"no instance_id (case 28)", sdsForm("10.0.0.1", sdsSet("tags", `{"az":"a","region":"r"}`)), "{}"},
		{"no region (case 28)", sdsForm("10.0.0.1", sdsSet("tags", `{"az":"a","instance_id":"i"}`)), "{}"},
		{"tags not JSON", sdsForm("10.0.0.1", sdsSet("tags", `{az: a}`)), "Invalid json supplied in tags"},
		{"weight a word", sdsForm("10.0.0.1", sdsSet("tags", `{`+base+`,"load_balancing_weight":"heavy"}`)), "Invalid load_balancing_weight. Supply an integer between 1 and 100."},
		{"weight 0", sdsForm("10.0.0.1", sdsSet("tags", `{`+base+`,"load_balancing_weight":0}`)), "Invalid load_balancing_weight. Supply an integer between 1 and 100."},
		{"weight 101", sdsForm("10.0.0.1", sdsSet("tags", `{`+base+`,"load_balancing_weight":101}`)), "Invalid load_balancing_weight. Supply an integer between 1 and 100."},
		{"weight 2.5", sdsForm("10.0.0.1", sdsSet("tags", `{`+base+`,"load_balancing_weight":2.5}`)), "Invalid load_balancing_weight. Supply an integer between 1 and 100."},
		{"weight an object", sdsForm("10.0.0.1", sdsSet("tags", `{`+base+`,"load_balancing_weight":{}}`)), "Invalid load_balancing_weight. Supply an integer between 1 and 100."},
		{"canary a word", sdsForm("10.0.0.1", sdsSet("tags", `{`+base+`,"canary":"perhaps"}`)), "error"},
		{"az a number", sdsForm("10.0.0.1", sdsSet("tags", `{"az":1,"instance_id":"i","region":"r"}`)), "error"},
		{"service not a DNS label", nil, "error"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path, form := "/v1/registration/valid", tc.form
			if form == nil {
				path, form = "/v1/registration/my_service", sdsForm("10.0.0.1")
			}
			r := sdsDo(t, "POST", a.URL+path, form)
			if r.status != http.StatusBadRequest {
				t.Fatalf("= %s, want 400", r)
			}
			switch tc.body {
			case "{}":
				if strings.TrimSpace(string(r.body)) != "{}" {
					t.Fatalf("body = %s, want {}", r.body)
				}
			case "error":
				if sdsErrorText(t, r) == "" {
					t.Fatalf("body = %s, want a JSON error", r.body)
				}
			default:
				if got := sdsErrorText(t, r); got != tc.body {
					t.Fatalf("error = %q, want %q", got, tc.body)
				}
			}
		})
	}
	if ans, _ := sdsGet(t, a.URL+"/v1/registration/valid"); len(ans.Hosts) != 0 {
		t.Errorf("refused registrations were listed: %+v", ans.Hosts)
	}
	if ans, _ := listServices(t, a); len(ans.Services) != 0 {
		t.Errorf("refused registrations reached the registry: %+v", ans.Services)
	}

	// Normalised, not refused: what Envoy needs, from what clients send.
	sdsMust(t, 200, "POST", a.URL+"/v1/registration/valid", sdsForm("10.0.0.1",
		sdsSet("tags", `{`+base+`,"load_balancing_weight":"25","canary":"True"}`)))
	ans, _ := sdsGet(t, a.URL+"/v1/registration/valid")
	if len(ans.Hosts) != 1 || ans.Hosts[0].Tags["load_balancing_weight"] != float64(25) || ans.Hosts[0].Tags["canary"] != true {
		t.Errorf("normalised host = %+v", ans.Hosts)
	}
}

// Cases 7-10.
func TestSDSDelete(t *testing.T) {
	a := startSDSAgent(t)
	r := sdsMust(t, 400, "DELETE", a.URL+"/v1/registration/foo/1.1.1.1", nil)
	if strings.TrimSpace(string(r.body)) != "{}" {
		t.Errorf("unknown host body = %s", r.body)
	}
	// DELETE without an IP was a 500 in the original.
	if r := sdsMust(t, 400, "DELETE", a.URL+"/v1/registration/foo", nil); sdsErrorText(t, r) == "" {
		t.Errorf("DELETE without IP: %s", r)
	}
	if r := sdsMust(t, 400, "DELETE", a.URL+"/v1/registration/foo/bar", nil); strings.TrimSpace(string(r.body)) != "{}" {
		t.Errorf("invalid IP: %s", r)
	}
	sdsMust(t, 200, "POST", a.URL+"/v1/registration/foo", sdsForm("10.10.10.10"))
	if r := sdsMust(t, 200, "DELETE", a.URL+"/v1/registration/foo/10.10.10.10", nil); strings.TrimSpace(string(r.body)) != "{}" {
		t.Errorf("delete body = %s", r.body)
	}
	if ans, _ := sdsGet(t, a.URL+"/v1/registration/foo"); len(ans.Hosts) != 0 {
		t.Errorf("deleted host listed: %+v", ans.Hosts)
	}
	sdsMust(t, 400, "DELETE", a.URL+"/v1/registration/foo/10.10.10.10", nil)
	// The other shapes the original answered 500.
	if r := sdsMust(t, 400, "GET", a.URL+"/v1/registration/foo/10.10.10.10", nil); sdsErrorText(t, r) == "" {
		t.Errorf("GET with an IP: %s", r)
	}
	sdsMust(t, 405, "PUT", a.URL+"/v1/registration/foo", nil)
}

// Cases 12-16 and X-Forwarded-For spoofing.
func TestSDSAutoIP(t *testing.T) {
	a := startSDSAgent(t) // believes X-Forwarded-For from loopback proxies
	auto := func(mods ...func(url.Values)) url.Values {
		return sdsForm("", append([]func(url.Values){sdsDel("ip"), sdsSet("auto_ip", "True")}, mods...)...)
	}
	tests := []struct {
		name   string
		form   url.Values
		xff    string
		status int
		stored string
	}{
		{"explicit ip wins (case 12)", sdsForm("10.10.10.10", sdsSet("auto_ip", "True")), "192.168.216.186", 200, "10.10.10.10"},
		{"forwarded address (case 13)", auto(), "192.168.216.186", 200, "192.168.216.186"},
		{"0.168.216.186 (case 14)", auto(), "0.168.216.186", 400, ""},
		{"192.169.216.186 (case 14)", auto(), "192.169.216.186", 400, ""},
		{"192.168.256.186 (case 14)", auto(), "192.168.256.186", 400, ""},
		{"192.168.216.256 (case 14)", auto(), "192.168.216.256", 400, ""},
		{"the last hop (case 15)", auto(), "192.168.0.0,192.168.216.187", 200, "192.168.216.187"},
		{"spoofed first hop is not used", auto(), "192.168.9.9, 10.20.30.40", 400, ""},
		{"no header: the loopback peer is not in 192.168/16", auto(), "", 400, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var hdr []string
			if tc.xff != "" {
				hdr = []string{"X-Forwarded-For", tc.xff}
			}
			r := sdsDo(t, "POST", a.URL+"/v1/registration/auto", tc.form, hdr...)
			if r.status != tc.status {
				t.Fatalf("= %s, want %d", r, tc.status)
			}
			if tc.stored == "" {
				return
			}
			ans, _ := sdsGet(t, a.URL+"/v1/registration/auto")
			for _, h := range ans.Hosts {
				if h.IPAddress == tc.stored {
					return
				}
			}
			t.Fatalf("%s not stored: %+v", tc.stored, ans.Hosts)
		})
	}
	if ans, _ := sdsGet(t, a.URL+"/v1/registration/auto"); len(ans.Hosts) != 3 {
		t.Errorf("hosts = %+v, want the three accepted", ans.Hosts)
	}

	// A client talking to the agent directly (no trusted proxy) cannot
	// choose its address with the header: the socket peer counts.
	b := startSDSAgent(t, "-sds-trusted-proxies=", "-sds-auto-ip-nets", "127.0.0.0/8")
	sdsMust(t, 200, "POST", b.URL+"/v1/registration/auto", auto(), "X-Forwarded-For", "192.168.216.186")
	ans, _ := sdsGet(t, b.URL+"/v1/registration/auto")
	if len(ans.Hosts) != 1 || ans.Hosts[0].IPAddress != "127.0.0.1" {
		t.Errorf("with no trusted proxy: hosts = %+v, want 127.0.0.1", ans.Hosts)
	}
}

// Cases 17-23, 31 and 32.
func TestSDSWeights(t *testing.T) {
	a := startSDSAgent(t)
	svc := a.URL + "/v1/registration/myservice"
	weights := func() map[string]any {
		ans, _ := sdsGet(t, svc)
		out := map[string]any{}
		for _, h := range ans.Hosts {
			out[h.IPAddress] = h.Tags["load_balancing_weight"]
		}
		return out
	}
	w := func(n string) url.Values { return url.Values{"load_balancing_weight": {n}} }

	sdsMust(t, 200, "POST", svc, sdsForm("10.0.0.1"))
	if r := sdsMust(t, 204, "POST", a.URL+"/v1/loadbalancing/myservice/10.0.0.1", w("10")); len(r.body) != 0 {
		t.Errorf("204 with a body: %q", r.body)
	}
	if got := weights()["10.0.0.1"]; got != float64(10) { // case 18: an integer
		t.Fatalf("weight = %v (%T), want 10", got, got)
	}
	sdsMust(t, 200, "POST", svc, sdsForm("10.0.0.1")) // case 17: a check-in without weight keeps it
	if got := weights()["10.0.0.1"]; got != float64(10) {
		t.Fatalf("after a check-in without weight: %v, want 10", got)
	}
	sdsMust(t, 200, "POST", svc, sdsForm("10.0.0.2", sdsSet("tags", `{"az":"a","instance_id":"i","region":"r","load_balancing_weight":10}`)))
	sdsMust(t, 204, "POST", a.URL+"/v1/loadbalancing/myservice/10.0.0.2", w("50")) // case 19
	if got := weights()["10.0.0.2"]; got != float64(50) {
		t.Fatalf("weight = %v, want 50", got)
	}
	sdsMust(t, 204, "POST", a.URL+"/v1/loadbalancing/myservice", w("70")) // cases 20, 32
	if got := weights(); got["10.0.0.1"] != float64(70) || got["10.0.0.2"] != float64(70) {
		t.Fatalf("weights after setting all = %v", got)
	}
	// A check-in that sends a weight sets it.
	sdsMust(t, 200, "POST", svc, sdsForm("10.0.0.1", sdsSet("tags", `{"az":"a","instance_id":"i","region":"r","load_balancing_weight":"5"}`)))
	if got := weights()["10.0.0.1"]; got != float64(5) {
		t.Fatalf("after a check-in with weight 5: %v", got)
	}
	// The all-hosts form works for an unknown service too.
	sdsMust(t, 204, "POST", a.URL+"/v1/loadbalancing/nothing", w("5"))

	for _, tc := range []struct {
		name, path string
		form       url.Values
		status     int
		err        string
	}{
		{"unregistered host (case 21)", "/v1/loadbalancing/myservice/10.9.9.9", w("10"), 404, "Host not found"},
		{"not_an_integer (case 22)", "/v1/loadbalancing/myservice/10.0.0.1", w("not_an_integer"), 400, "Invalid load_balancing_weight. Supply an integer between 1 and 100."},
		{"9001 (case 23)", "/v1/loadbalancing/myservice/10.0.0.1", w("9001"), 400, "Invalid load_balancing_weight. Supply an integer between 1 and 100."},
		{"0", "/v1/loadbalancing/myservice", w("0"), 400, "Invalid load_balancing_weight. Supply an integer between 1 and 100."},
		{"1.5", "/v1/loadbalancing/myservice", w("1.5"), 400, "Invalid load_balancing_weight. Supply an integer between 1 and 100."},
		{"missing", "/v1/loadbalancing/myservice/10.0.0.1", url.Values{}, 400, "Required parameter 'weight' is missing."},
	} {
		r := sdsDo(t, "POST", a.URL+tc.path, tc.form)
		if r.status != tc.status || sdsErrorText(t, r) != tc.err {
			t.Errorf("%s: = %s, want %d %q", tc.name, r, tc.status, tc.err)
		}
	}
	// The weight is the model's: the native API shows it.
	ans, _, _ := listInstances(t, a, "myservice", "")
	for _, in := range ans.Instances {
		if want := map[string]int{"10.0.0.1": 5, "10.0.0.2": 70}[in.Address]; in.Weight != want {
			t.Errorf("native weight of %s = %d, want %d", in.Address, in.Weight, want)
		}
	}
}

// Cases 4, 30 and 35: the repo index across services.
func TestSDSRepo(t *testing.T) {
	a := startSDSAgent(t)
	// Two services, one IP, one repo.
	sdsMust(t, 200, "POST", a.URL+"/v1/registration/foo", sdsForm("10.0.0.1", sdsSet("service_repo_name", "shared")))
	sdsMust(t, 200, "POST", a.URL+"/v1/registration/bar", sdsForm("10.0.0.1", sdsSet("service_repo_name", "shared")))
	sdsMust(t, 200, "POST", a.URL+"/v1/registration/baz", sdsForm("10.0.0.2", sdsSet("service_repo_name", "elsewhere")))
	ans, _ := sdsGet(t, a.URL+"/v1/registration/repo/shared")
	if ans.ServiceRepoName != "shared" || len(ans.Hosts) != 2 {
		t.Fatalf("repo answer = %+v", ans)
	}
	services := map[string]bool{}
	for _, h := range ans.Hosts {
		services[h.Service] = true
	}
	if !services["foo"] || !services["bar"] {
		t.Fatalf("services = %v, want foo and bar", services)
	}
	sdsMust(t, 200, "DELETE", a.URL+"/v1/registration/foo/10.0.0.1", nil)
	ans, _ = sdsGet(t, a.URL+"/v1/registration/repo/shared")
	if len(ans.Hosts) != 1 || ans.Hosts[0].Service != "bar" {
		t.Fatalf("after deleting foo: %+v", ans.Hosts)
	}
	if ans, _ := sdsGet(t, a.URL+"/v1/registration/foo"); len(ans.Hosts) != 0 {
		t.Fatalf("deleted host still listed: %+v", ans.Hosts)
	}
	// "repo" on its own is a service name.
	sdsMust(t, 200, "POST", a.URL+"/v1/registration/repo", sdsForm("10.0.0.3"))
	if ans, _ := sdsGet(t, a.URL+"/v1/registration/repo"); ans.Service != "repo" || len(ans.Hosts) != 1 {
		t.Fatalf("service repo = %+v", ans)
	}
}

// Case 33 and the expiry boundary: a host is listed for HOST_TTL after
// its last check-in and not after, while a host that keeps checking in
// stays; check-ins that change nothing keep a host listed without writing
// to the log.
func TestSDSExpiry(t *testing.T) {
	const ttl = 2 * time.Second
	a := startSDSAgent(t, "-sds-host-ttl", ttl.String())
	svc := a.URL + "/v1/registration/web"

	// Heartbeats within the TTL keep the host for several TTLs, with the
	// same bytes and no log write.
	sdsMust(t, 200, "POST", svc, sdsForm("10.0.0.1"))
	_, first := sdsGet(t, svc)
	index := readyIndex(t, a)
	start, last := time.Now(), time.Now()
	testutil.Eventually(t, 4*ttl, func() (bool, string) {
		if time.Since(last) >= ttl/4 {
			sdsMust(t, 200, "POST", svc, sdsForm("10.0.0.1"))
			last = time.Now()
		}
		_, body := sdsGet(t, svc)
		if !bytes.Equal(body, first) {
			t.Fatalf("a heartbeating host's answer changed:\n%s\n%s", first, body)
		}
		return time.Since(start) > 2*ttl, "heartbeating"
	})
	if got := readyIndex(t, a); got != index {
		t.Errorf("check-ins that changed nothing moved the log from %d to %d", index, got)
	}

	// Then it stops: listed while within the TTL, gone soon after; a
	// second host that keeps checking in stays.
	sent := time.Now()
	sdsMust(t, 200, "POST", svc, sdsForm("10.0.0.1"))
	sdsMust(t, 200, "POST", svc, sdsForm("10.0.0.2"))
	last = time.Now()
	testutil.Eventually(t, ttl+5*time.Second, func() (bool, string) {
		if time.Since(last) >= ttl/4 {
			sdsMust(t, 200, "POST", svc, sdsForm("10.0.0.2"))
			last = time.Now()
		}
		ans, _ := sdsGet(t, svc)
		elapsed := time.Since(sent)
		listed := map[string]bool{}
		for _, h := range ans.Hosts {
			listed[h.IPAddress] = true
		}
		if !listed["10.0.0.2"] {
			t.Fatalf("the host that keeps checking in is gone: %+v", ans.Hosts)
		}
		if !listed["10.0.0.1"] && elapsed <= ttl {
			t.Fatalf("host gone %v after its last check-in, within the TTL of %v", elapsed, ttl)
		}
		return !listed["10.0.0.1"], fmt.Sprintf("still listed %v after its last check-in", elapsed)
	})
	if gone := time.Since(sent); gone > ttl+2*time.Second {
		t.Errorf("host listed for %v, TTL %v", gone, ttl)
	}
	// A stale row is removed, not just hidden (no SDS reads needed).
	testutil.Eventually(t, ttl+5*time.Second, func() (bool, string) {
		if time.Since(last) >= ttl/4 {
			sdsMust(t, 200, "POST", svc, sdsForm("10.0.0.2"))
			last = time.Now()
		}
		ans, _, _ := listInstances(t, a, "web", "")
		return len(ans.Instances) == 1 && ans.Instances[0].Address == "10.0.0.2", fmt.Sprintf("%d instances in the registry", len(ans.Instances))
	})
}

// Cache staleness: with the simple cache an answer with hosts is served
// for CACHE_TTL whatever changed; an empty answer is never cached; the
// null cache is always fresh.
func TestSDSCache(t *testing.T) {
	const cacheTTL = 2 * time.Second
	a := startSDSAgent(t, "-sds-cache-type", "simple", "-sds-cache-ttl", cacheTTL.String())
	svc := a.URL + "/v1/registration/web"
	sdsGet(t, svc) // empty: not kept
	sdsMust(t, 200, "POST", svc, sdsForm("10.0.0.1"))
	ans, cached := sdsGet(t, svc)
	cachedAt := time.Now()
	if len(ans.Hosts) != 1 {
		t.Fatalf("an empty answer was served from the cache: %+v", ans)
	}
	sdsMust(t, 200, "DELETE", svc+"/10.0.0.1", nil)
	_, stale := sdsGet(t, svc)
	if time.Since(cachedAt) < cacheTTL && !bytes.Equal(stale, cached) {
		t.Fatalf("within CACHE_TTL the answer changed:\n%s\n%s", cached, stale)
	}
	testutil.Eventually(t, cacheTTL+5*time.Second, func() (bool, string) {
		ans, _ := sdsGet(t, svc)
		if len(ans.Hosts) == 0 && time.Since(cachedAt) < cacheTTL-100*time.Millisecond {
			t.Fatalf("cache dropped after %v, CACHE_TTL %v", time.Since(cachedAt), cacheTTL)
		}
		return len(ans.Hosts) == 0, "stale host still served"
	})

	b := startSDSAgent(t) // null cache
	sdsMust(t, 200, "POST", b.URL+"/v1/registration/web", sdsForm("10.0.0.1"))
	sdsGet(t, b.URL+"/v1/registration/web")
	sdsMust(t, 200, "DELETE", b.URL+"/v1/registration/web/10.0.0.1", nil)
	if ans, _ := sdsGet(t, b.URL+"/v1/registration/web"); len(ans.Hosts) != 0 {
		t.Fatalf("the null cache served a removed host: %+v", ans.Hosts)
	}
}

// One host per service and IP: a second port replaces the first. An
// instance registered through the native API on another port of the same
// IP is a second host, and DELETE of the IP removes both.
func TestSDSDuplicateIPOtherPort(t *testing.T) {
	a := startSDSAgent(t)
	svc := a.URL + "/v1/registration/web"
	sdsMust(t, 200, "POST", svc, sdsForm("10.0.0.1", sdsSet("port", "8080")))
	sdsMust(t, 200, "POST", svc, sdsForm("10.0.0.1", sdsSet("port", "9090")))
	ans, _ := sdsGet(t, svc)
	if len(ans.Hosts) != 1 || ans.Hosts[0].Port != 9090 {
		t.Fatalf("hosts = %+v, want one on 9090", ans.Hosts)
	}
	register(t, a, "web", "web-admin", map[string]any{"address": "10.0.0.1", "port": 9091, "zone": "eu-1a", "weight": 3})
	ans, _ = sdsGet(t, svc)
	if len(ans.Hosts) != 2 || ans.Hosts[0].Port != 9090 || ans.Hosts[1].Port != 9091 {
		t.Fatalf("hosts = %+v, want 9090 and 9091", ans.Hosts)
	}
	if tags := ans.Hosts[1].Tags; tags["az"] != "eu-1a" || tags["load_balancing_weight"] != float64(3) || tags["instance_id"] != "web-admin" {
		t.Errorf("tags of the native instance = %v", tags)
	}
	sdsMust(t, 200, "DELETE", svc+"/10.0.0.1", nil)
	if ans, _ := sdsGet(t, svc); len(ans.Hosts) != 0 {
		t.Fatalf("after DELETE: %+v", ans.Hosts)
	}
}

// Hosts are ordinary instances: the native API sees them with their
// zone, region, weight and canary; IPv6 works; a host-name instance is
// left out of SDS answers (Envoy reads ip_address as an IP).
func TestSDSInstancesEverywhere(t *testing.T) {
	a := startSDSAgent(t)
	sdsMust(t, 200, "POST", a.URL+"/v1/registration/api", sdsForm("2001:DB8::7", sdsSet("port", "443"),
		sdsSet("tags", `{"az":"eu-west-1a","instance_id":"i-7","region":"eu-west-1","canary":true,"load_balancing_weight":12}`)))
	ans, _, _ := listInstances(t, a, "api", "")
	if len(ans.Instances) != 1 {
		t.Fatalf("native instances = %+v", ans.Instances)
	}
	in := ans.Instances[0]
	if in.ID != "2001:db8::7" || in.Address != "2001:db8::7" || in.Port != 443 || in.Weight != 12 || in.Health != "passing" {
		t.Errorf("native view = %+v", in)
	}
	var raw struct {
		Instances []struct {
			Zone   string `json:"zone"`
			Region string `json:"region"`
			Canary bool   `json:"canary"`
			Repo   string `json:"repo"`
		} `json:"instances"`
	}
	_, b, _ := listInstances(t, a, "api", "")
	_ = json.Unmarshal(b, &raw)
	if r := raw.Instances[0]; r.Zone != "eu-west-1a" || r.Region != "eu-west-1" || !r.Canary || r.Repo != "bar" {
		t.Errorf("native view = %+v", r)
	}
	register(t, a, "api", "by-name", map[string]any{"address": "api.internal", "port": 80})
	sdsA, _ := sdsGet(t, a.URL+"/v1/registration/api")
	if len(sdsA.Hosts) != 1 || sdsA.Hosts[0].IPAddress != "2001:db8::7" {
		t.Errorf("SDS hosts = %+v", sdsA.Hosts)
	}
}

// Metrics count SDS requests by route and status code.
func TestSDSMetrics(t *testing.T) {
	a := startSDSAgent(t)
	sdsMust(t, 200, "POST", a.URL+"/v1/registration/web", sdsForm("10.0.0.1"))
	sdsMust(t, 200, "POST", a.URL+"/v1/registration/web", sdsForm("10.0.0.1"))
	sdsDo(t, "POST", a.URL+"/v1/registration/web", sdsForm("bad"))
	status, _, body := testutil.Do(t, "GET", a.URL+"/metrics", nil)
	if status != 200 {
		t.Fatalf("/metrics: %d", status)
	}
	for _, want := range []string{
		`roster_sds_requests_total{code="200",route="POST /v1/registration/{service}"} 2`,
		`roster_sds_requests_total{code="400",route="POST /v1/registration/{service}"} 1`,
		`roster_sds_check_ins_total{result="created"} 1`,
		`roster_sds_check_ins_total{result="heartbeat"} 1`,
	} {
		if !bytes.Contains(body, []byte(want)) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// sdsListenAddr waits for the agent to log the address of its own SDS
// listener.
func sdsListenAddr(t *testing.T, a *testutil.Agent) string {
	t.Helper()
	var addr string
	testutil.Eventually(t, 10*time.Second, func() (bool, string) {
		sc := bufio.NewScanner(strings.NewReader(a.Logs()))
		for sc.Scan() {
			var rec struct {
				Msg  string `json:"msg"`
				Addr string `json:"addr"`
			}
			if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Msg == "sds api listening" {
				addr = rec.Addr
				return true, ""
			}
		}
		return false, "no sds api listening line"
	})
	return addr
}

// The compatibility mode reads the original's environment (case 11: the
// backends), serves on PORT, and refuses DynamoDB naming the others.
func TestSDSCompatMode(t *testing.T) {
	a := startAgent(t, testutil.AgentOptions{Dev: true, Args: []string{"-sds-compat"}, Env: []string{
		"HOST_TTL=1", "CACHE_TYPE=null", "APPLICATION_ENV=staging", "PORT=0", "LOG_LEVEL=INFO", "BACKEND_STORAGE=InMemory",
		"ROSTER_SDS_ADDR=127.0.0.1:8080", // PORT keeps its host: loopback in tests
	}})
	addr := sdsListenAddr(t, a)
	if !strings.HasPrefix(addr, "127.0.0.1:") || strings.HasSuffix(addr, ":8080") {
		t.Fatalf("SDS listener on %s, want 127.0.0.1 and the kernel's port from PORT=0", addr)
	}
	sdsURL := "http://" + addr
	if r := sdsMust(t, 200, "GET", sdsURL+"/healthcheck", nil); string(r.body) != "OK" {
		t.Errorf("healthcheck = %s", r)
	}
	sdsMust(t, 200, "POST", sdsURL+"/v1/registration/web", sdsForm("10.0.0.1"))
	ans, _ := sdsGet(t, sdsURL+"/v1/registration/web")
	if ans.Env != "staging" || len(ans.Hosts) != 1 {
		t.Fatalf("answer on PORT = %+v", ans)
	}
	// The same API on the main listener; the native API only there.
	if ans, _ := sdsGet(t, a.URL+"/v1/registration/web"); len(ans.Hosts) != 1 {
		t.Fatalf("answer on the HTTP API = %+v", ans)
	}
	sdsMust(t, 404, "GET", sdsURL+"/v1/services", nil)
	// HOST_TTL=1: expired in about a second.
	testutil.Eventually(t, 6*time.Second, func() (bool, string) {
		ans, _ := sdsGet(t, sdsURL+"/v1/registration/web")
		return len(ans.Hosts) == 0, "host still listed with HOST_TTL=1"
	})

	// `roster sds` is the same mode; DynamoDB and plugins are refused.
	ctx := bound(t)
	for _, backend := range []string{"DynamoDB", "HBase"} {
		res := runCLIEnv(t, ctx, []string{"BACKEND_STORAGE=" + backend, "PORT=0"}, "sds", "-dev", "-http-addr", "127.0.0.1:0")
		if res.code == 0 || !strings.Contains(res.stderr, "BACKEND_STORAGE") || !strings.Contains(res.stderr, "InFile") || !strings.Contains(res.stderr, "InMemory") {
			t.Errorf("BACKEND_STORAGE=%s: exit %d, stderr %q", backend, res.code, res.stderr)
		}
	}
	res := runCLIEnv(t, ctx, []string{"HOST_TTL=ten", "PORT=0"}, "sds", "-dev", "-http-addr", "127.0.0.1:0")
	if res.code == 0 || !strings.Contains(res.stderr, "HOST_TTL") {
		t.Errorf("HOST_TTL=ten: exit %d, stderr %q", res.code, res.stderr)
	}
}

// BACKEND_STORAGE=InFile is roster's durable store: hosts and their
// last_check_in survive a restart.
func TestSDSCompatInFileSurvivesRestart(t *testing.T) {
	a := startAgent(t, testutil.AgentOptions{Args: []string{"-sds-compat"}, Env: []string{"BACKEND_STORAGE=InFile", "PORT=0", "ROSTER_SDS_ADDR=127.0.0.1:0"}})
	sdsMust(t, 200, "POST", a.URL+"/v1/registration/web", sdsForm("10.0.0.1"))
	_, before := sdsGet(t, a.URL+"/v1/registration/web")
	if err := a.Stop(); err != nil {
		t.Fatal(err)
	}
	a.Restart(t)
	_, after := sdsGet(t, a.URL+"/v1/registration/web")
	if !bytes.Equal(before, after) {
		t.Fatalf("after a restart:\n%s\nbefore:\n%s", after, before)
	}
}
