package consulapi

import (
	"encoding/json"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rosterhq/roster/internal/registry"
)

// serviceDefinition is the body of PUT /v1/agent/service/register (and
// the Service of /v1/catalog/register), decoded leniently (decodeBody).
type serviceDefinition struct {
	Kind              string
	ID                string `consul:"ServiceID"`
	Name              string `consul:"Service,ServiceName"`
	Tags              []string
	Address           string
	TaggedAddresses   map[string]serviceAddress
	Meta              map[string]string
	Port              int
	SocketPath        string
	EnableTagOverride bool
	Weights           *weights
	Check             *checkDefinition
	Checks            []*checkDefinition
	Proxy             json.RawMessage
	Connect           json.RawMessage
	Namespace         string
	Partition         string
	Locality          json.RawMessage
}

// checkDefinition is one check of a registration.
type checkDefinition struct {
	CheckID                        string `consul:"ID"`
	Name                           string
	Notes                          string
	Status                         string
	ServiceID                      string
	Interval                       duration
	Timeout                        duration
	TTL                            duration
	HTTP                           string
	Header                         map[string][]string
	Method                         string
	Body                           string
	DisableRedirects               bool
	TLSServerName                  string
	TLSSkipVerify                  bool
	TCP                            string
	TCPUseTLS                      bool
	UDP                            string
	GRPC                           string
	GRPCUseTLS                     bool
	H2PING                         string
	H2PingUseTLS                   bool
	OSService                      string
	ScriptArgs                     []string `consul:"Args"`
	Script                         string
	DockerContainerID              string
	Shell                          string
	AliasNode                      string
	AliasService                   string
	SuccessBeforePassing           int
	FailuresBeforeWarning          int
	FailuresBeforeCritical         int
	DeregisterCriticalServiceAfter duration
	OutputMaxSize                  int
}

// defaultHTTPTimeout is Consul's timeout of an HTTP, TCP or gRPC check
// that names none (capped at the interval here: roster's checks finish
// within their interval).
const defaultHTTPTimeout = 10 * time.Second

// invalid collects the offending fields of a registration, in Consul's
// names.
type invalid struct {
	fields []string
	check  bool // every offending field is a check's
}

func (v *invalid) add(field, msg string) {
	if len(v.fields) == 0 {
		v.check = strings.HasPrefix(field, "Check")
	} else if !strings.HasPrefix(field, "Check") {
		v.check = false
	}
	v.fields = append(v.fields, field+": "+msg)
}

func (v *invalid) err() error {
	if len(v.fields) == 0 {
		return nil
	}
	what := "Invalid service: "
	if v.check {
		what = "Invalid check: "
	}
	return &httpError{code: 400, msg: what + strings.Join(v.fields, "; ")}
}

// toInstance translates a registration; nodeAddr stands in for an empty
// Address. It rejects, naming every field, what roster cannot keep or
// run: saying yes to a check that would never run is a wrong success.
// Accepted and not kept: TaggedAddresses, EnableTagOverride,
// Weights.Warning, Notes.
func toInstance(d *serviceDefinition, nodeAddr string) (*registry.Instance, []string, error) {
	if d.Name == "" {
		return nil, nil, &httpError{code: 400, msg: "Missing service name"}
	}
	v := &invalid{}
	in := &registry.Instance{Service: d.Name, ID: d.ID, Address: d.Address, Port: d.Port, Tags: d.Tags, Meta: d.Meta}
	if in.ID == "" {
		in.ID = d.Name
	}
	switch ip := net.ParseIP(d.Address); {
	case d.Address == "":
		in.Address = nodeAddr
	case ip != nil && ip.IsUnspecified():
		return nil, nil, &httpError{code: 400, msg: "Invalid service address"}
	}
	for k := range d.Meta {
		if strings.HasPrefix(k, "consul-") {
			return nil, nil, &httpError{code: 400, msg: fmt.Sprintf("Invalid Service Meta: Key prefix 'consul-' is reserved for internal use: %q", k)}
		}
	}
	if d.Weights != nil {
		if d.Weights.Passing < 1 {
			return nil, nil, &httpError{code: 400, msg: "Invalid Weights: Passing must be greater than 0"}
		}
		in.Weight = d.Weights.Passing
	}
	if d.Kind != "" && d.Kind != "typical" {
		v.add("Kind", fmt.Sprintf("%q services (Connect) are not supported", d.Kind))
	}
	if isSet(d.Proxy) {
		v.add("Proxy", "Connect proxies are not supported")
	}
	if isSet(d.Connect) {
		v.add("Connect", "Connect is not supported")
	}
	if d.SocketPath != "" {
		v.add("SocketPath", "services on unix sockets are not supported")
	}
	if d.Namespace != "" && d.Namespace != "default" || d.Partition != "" && d.Partition != "default" {
		v.add("Namespace", "only the default namespace and partition exist")
	}
	var paths []string
	single := d.Check != nil && len(d.Checks) == 0
	add := func(c *checkDefinition, path string, n int) {
		if c == nil {
			return
		}
		rc, ok := toCheck(c, d.Name, in.ID, path, defaultCheckID(in.ID, n, single), v)
		if ok {
			in.Checks = append(in.Checks, rc)
			paths = append(paths, path)
		}
	}
	add(d.Check, "Check", 1)
	for i, c := range d.Checks {
		n := i + 1
		if d.Check != nil {
			n++ // Consul numbers Check first, then Checks
		}
		add(c, "Checks["+strconv.Itoa(i)+"]", n)
	}
	return in, paths, v.err()
}

func isSet(raw json.RawMessage) bool {
	s := strings.TrimSpace(string(raw))
	return s != "" && s != "null" && s != "{}"
}

// toCheck translates one check; it reports false when the check is
// rejected (the reasons are in v).
func toCheck(c *checkDefinition, serviceName, serviceID, path, defaultID string, v *invalid) (registry.Check, bool) {
	bad := len(v.fields)
	f := func(name string) string { return path + "." + name }
	rc := registry.Check{ID: c.CheckID, Name: c.Name, Interval: registry.Duration(c.Interval), Timeout: registry.Duration(c.Timeout),
		DeregisterAfter: registry.Duration(c.DeregisterCriticalServiceAfter)}
	if rc.ID == "" {
		rc.ID = defaultID
	}
	if rc.Name == "" {
		rc.Name = "Service '" + serviceName + "' check"
	}
	if c.ServiceID != "" && c.ServiceID != serviceID {
		v.add(f("ServiceID"), "must be the service's ID")
	}
	var kinds []string
	if c.TTL != 0 {
		kinds = append(kinds, "TTL")
		rc.Type, rc.TTL = registry.CheckTTL, registry.Duration(c.TTL)
	}
	if c.HTTP != "" {
		kinds = append(kinds, "HTTP")
		rc.Type, rc.Target = registry.CheckHTTP, c.HTTP
	}
	if c.TCP != "" {
		kinds = append(kinds, "TCP")
		rc.Type, rc.Target = registry.CheckTCP, c.TCP
	}
	if c.GRPC != "" {
		kinds = append(kinds, "GRPC")
		rc.Type, rc.Target = registry.CheckGRPC, c.GRPC
	}
	unsupported := []struct {
		name string
		set  bool
	}{
		{"ScriptArgs", len(c.ScriptArgs) > 0}, {"Script", c.Script != ""}, {"DockerContainerID", c.DockerContainerID != ""},
		{"Shell", c.Shell != ""}, {"UDP", c.UDP != ""}, {"H2PING", c.H2PING != ""}, {"OSService", c.OSService != ""},
		{"AliasService", c.AliasService != ""}, {"AliasNode", c.AliasNode != ""},
		{"Header", len(c.Header) > 0}, {"Body", c.Body != ""}, {"TLSServerName", c.TLSServerName != ""},
		{"TLSSkipVerify", c.TLSSkipVerify}, {"TCPUseTLS", c.TCPUseTLS}, {"GRPCUseTLS", c.GRPCUseTLS},
		{"H2PingUseTLS", c.H2PingUseTLS}, {"DisableRedirects", c.DisableRedirects},
	}
	for _, u := range unsupported {
		if u.set {
			v.add(f(u.name), "not supported by roster's checks")
		}
	}
	if c.Method != "" && !strings.EqualFold(c.Method, "GET") {
		v.add(f("Method"), "only GET is supported")
	}
	switch {
	case len(kinds) == 0 && len(v.fields) == bad:
		v.add(path, "one of TTL, HTTP, TCP or GRPC is required")
	case len(kinds) > 1:
		v.add(path, "only one of "+strings.Join(kinds, ", ")+" may be set")
	}
	switch strings.ToLower(c.Status) {
	case "":
		rc.Status = registry.Critical // Consul's start: critical until it passes
	case "passing", "warning", "critical":
		rc.Status = registry.Health(strings.ToLower(c.Status))
	default:
		v.add(f("Status"), "Status for checks must 'passing', 'warning', 'critical'")
	}
	if rc.Type != registry.CheckTTL && len(kinds) == 1 {
		if c.Interval <= 0 {
			v.add(f("Interval"), "required for "+kinds[0]+" checks")
		}
		if rc.Timeout == 0 {
			rc.Timeout = registry.Duration(defaultHTTPTimeout)
		}
		rc.Timeout = min(rc.Timeout, rc.Interval)
		// Consul turns a check critical at its first failure and
		// passing at its first success unless told otherwise.
		rc.FailuresBeforeCritical = max(c.FailuresBeforeCritical, 1)
		rc.SuccessesBeforePassing = max(c.SuccessBeforePassing, 1)
		if c.FailuresBeforeWarning > 0 && c.FailuresBeforeWarning < rc.FailuresBeforeCritical {
			v.add(f("FailuresBeforeWarning"), "a warning before critical is not supported")
		}
	}
	if rc.Type == registry.CheckTTL && (c.Interval != 0 || c.Timeout != 0) && len(kinds) == 1 {
		rc.Interval, rc.Timeout = 0, 0 // Consul ignores them on a TTL check
	}
	if c.TTL < 0 || c.Interval < 0 || c.Timeout < 0 || c.DeregisterCriticalServiceAfter < 0 {
		v.add(path, "durations must not be negative")
	}
	return rc, len(v.fields) == bad
}

// mergeChecks keeps the checks of prev that in does not redefine, as
// Consul keeps a service's other checks on re-registration unless asked
// to replace them. A kept TTL check gives way to a new one: an instance
// has at most one. Maintenance checks are left to the store, which keeps
// them atomically (registry.RegisterOp): copying one here could undo a
// concurrent DisableMaintenance.
func mergeChecks(in, prev *registry.Instance) {
	hasTTL := in.TTLCheck() != nil
	for _, c := range prev.Checks {
		if in.Check(c.ID) != nil || hasTTL && c.Type == registry.CheckTTL || c.Type == registry.CheckMaintenance {
			continue
		}
		in.Checks = append(in.Checks, c)
	}
}

// keepMaintenance copies prev's maintenance checks to in, an instance
// that takes prev's ID under another service name: Consul's maintenance
// belongs to the service ID.
func keepMaintenance(in, prev *registry.Instance) {
	for _, c := range prev.Checks {
		if c.Type == registry.CheckMaintenance && in.Check(c.ID) == nil {
			in.Checks = append(in.Checks, c)
		}
	}
}

// registryFieldError renames a registry.ValidationError's fields to the
// registration's Consul names; paths[i] is where check i came from.
func registryFieldError(verr *registry.ValidationError, paths []string) error {
	v := &invalid{}
	for _, fe := range verr.Fields {
		v.add(consulField(fe.Field, paths), fe.Message)
	}
	return v.err()
}

var checkFieldNames = map[string]string{
	"id": "CheckID", "name": "Name", "ttl": "TTL", "interval": "Interval", "timeout": "Timeout",
	"failures_before_critical": "FailuresBeforeCritical", "successes_before_passing": "SuccessBeforePassing",
	"deregister_after": "DeregisterCriticalServiceAfter", "status": "Status", "output": "Output",
	"type": "TTL", "target": "HTTP/TCP/GRPC",
}

func consulField(field string, paths []string) string {
	switch {
	case field == "service":
		return "Name"
	case field == "id":
		return "ID"
	case field == "address":
		return "Address"
	case field == "port":
		return "Port"
	case field == "weight":
		return "Weights.Passing"
	case field == "checks":
		return "Checks"
	case strings.HasPrefix(field, "tags"):
		return "Tags" + strings.TrimPrefix(field, "tags")
	case strings.HasPrefix(field, "meta"):
		return "Meta" + strings.TrimPrefix(field, "meta")
	case strings.HasPrefix(field, "checks["):
		rest := strings.TrimPrefix(field, "checks[")
		n, sub, _ := strings.Cut(rest, "].")
		i, err := strconv.Atoi(n)
		if err != nil || i < 0 || i >= len(paths) {
			return field
		}
		if name, ok := checkFieldNames[sub]; ok {
			sub = name
		}
		return paths[i] + "." + sub
	}
	return field
}

// replaceChecks reads ?replace-existing-checks: present and empty, or true.
func replaceChecks(q map[string][]string) bool {
	vs, ok := q["replace-existing-checks"]
	if !ok {
		return false
	}
	if slices.Contains(vs, "") {
		return true
	}
	b, _ := strconv.ParseBool(vs[0])
	return b
}
