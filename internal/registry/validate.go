package registry

import (
	"crypto/rand"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Limits on what one instance may carry. They bound memory per instance and
// keep every field servable over DNS and HTTP.
const (
	MaxTags       = 64
	MaxTagLen     = 255
	MaxMeta       = 64
	MaxMetaKeyLen = 128
	MaxMetaValLen = 512
	MaxIDLen      = 128
	MaxChecks     = 16 // besides maintenance checks
	// MaxMaintenanceChecks bounds the maintenance checks a registration
	// names; they do not count towards MaxChecks, so that one an operator
	// added does not make the owner's next registration too large.
	MaxMaintenanceChecks = 4
	MaxTextLen           = 256 // revision, repo, check name
	MaxLabelLen          = 63  // service, zone, region: DNS labels
	MaxHostnameLen       = 253
	MaxOutputLen         = 4096 // check output

	DefaultWeight                 = 1
	DefaultFailuresBeforeCritical = 3
	DefaultSuccessesBeforePassing = 1
	DefaultCheckInterval          = 10 * time.Second
	DefaultCheckTimeout           = 5 * time.Second
	MinCheckInterval              = 100 * time.Millisecond
	MaxDuration                   = 24 * time.Hour
)

// ValidName reports whether s is a DNS label per RFC 1123: 1–63 lower-case
// letters, digits and hyphens, not starting or ending with a hyphen.
func ValidName(s string) bool {
	if len(s) == 0 || len(s) > MaxLabelLen || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// NormalizeName lower-cases a service name: names are DNS labels, and DNS
// compares them without regard to case.
func NormalizeName(s string) string { return strings.ToLower(s) }

// ValidID reports whether s may be an instance ID: 1–128 characters from
// letters, digits and "-_.:@+~".
func ValidID(s string) bool {
	if len(s) == 0 || len(s) > MaxIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-_.:@+~", c) >= 0) {
			return false
		}
	}
	return true
}

// ValidHostname reports whether s is an RFC 1123 host name.
func ValidHostname(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if len(s) == 0 || len(s) > MaxHostnameLen {
		return false
	}
	labels := strings.Split(s, ".")
	for _, label := range labels {
		if !ValidName(strings.ToLower(label)) {
			return false
		}
	}
	// The top label is not all digits (RFC 1123 §2.1), so that a
	// malformed IPv4 address such as 10.0.0.300 is not a host name.
	return strings.Trim(labels[len(labels)-1], "0123456789") != ""
}

// ValidAddress reports whether s is an IPv4 or IPv6 address (without zone)
// or a host name.
func ValidAddress(s string) bool {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Zone() == ""
	}
	// Something that looks like an IP but did not parse is not a host name.
	if strings.Contains(s, ":") {
		return false
	}
	return ValidHostname(s)
}

// validText: at most max bytes of valid UTF-8 without control characters.
// Invalid UTF-8 is refused because JSON, and so the log, would turn it into
// U+FFFD: the node that accepted the write and every replay would differ.
func validText(s string, max int) bool {
	if len(s) > max || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

// NewID returns a random instance ID (a version 4 UUID).
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// Normalize fills defaults and validates an instance for registration. It
// lists every offending field in a *ValidationError. The instance is
// changed in place: the name lower-cased, defaults set, an ID generated
// when absent.
func Normalize(in *Instance) error {
	var v ValidationError
	in.Service = NormalizeName(in.Service)
	if !ValidName(in.Service) {
		v.Add("service", "must be a DNS label: 1-63 letters, digits or '-', not starting or ending with '-'")
	}
	if in.ID == "" {
		in.ID = NewID()
	} else if !ValidID(in.ID) {
		v.Add("id", "must be 1-128 characters from letters, digits and -_.:@+~")
	}
	if in.Address == "" {
		v.Add("address", "is required")
	} else if !ValidAddress(in.Address) {
		v.Add("address", "must be an IPv4 or IPv6 address or a host name")
	}
	if in.Port < 1 || in.Port > 65535 {
		v.Add("port", "must be between 1 and 65535")
	}
	validateTags(&v, in.Tags)
	validateMeta(&v, in.Meta)
	if in.Weight == 0 {
		in.Weight = DefaultWeight
	} else if in.Weight < 1 || in.Weight > 100 {
		v.Add("weight", "must be between 1 and 100")
	}
	if in.Priority < 0 || in.Priority > 65535 {
		v.Add("priority", "must be between 0 and 65535")
	}
	in.Zone = strings.ToLower(in.Zone)
	if in.Zone != "" && !ValidName(in.Zone) {
		v.Add("zone", "must be a DNS label")
	}
	in.Region = strings.ToLower(in.Region)
	if in.Region != "" && !ValidName(in.Region) {
		v.Add("region", "must be a DNS label")
	}
	if !validText(in.Revision, MaxTextLen) {
		v.Add("revision", fmt.Sprintf("must be at most %d printable characters", MaxTextLen))
	}
	if !validText(in.Repo, MaxTextLen) {
		v.Add("repo", fmt.Sprintf("must be at most %d printable characters", MaxTextLen))
	}
	validateChecks(&v, in.Checks)
	// One form for "none", so that an op applied from memory and the
	// same op decoded from the log are equal.
	if len(in.Tags) == 0 {
		in.Tags = nil
	}
	if len(in.Meta) == 0 {
		in.Meta = nil
	}
	if len(in.Checks) == 0 {
		in.Checks = nil
	}
	// Indexes and health are the store's to set.
	in.CreateIndex, in.ModifyIndex = 0, 0
	in.ComputeHealth()
	return v.Err()
}

func validateTags(v *ValidationError, tags []string) {
	if len(tags) > MaxTags {
		v.Add("tags", fmt.Sprintf("at most %d tags", MaxTags))
		return
	}
	for i, t := range tags {
		if t == "" || !validText(t, MaxTagLen) {
			v.Add("tags["+strconv.Itoa(i)+"]", fmt.Sprintf("must be 1-%d printable characters", MaxTagLen))
		}
	}
}

func validMetaKey(k string) bool {
	if len(k) == 0 || len(k) > MaxMetaKeyLen {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

func validateMeta(v *ValidationError, meta map[string]string) {
	if len(meta) > MaxMeta {
		v.Add("meta", fmt.Sprintf("at most %d keys", MaxMeta))
		return
	}
	for k, val := range meta {
		if !validMetaKey(k) {
			v.Add("meta."+k, fmt.Sprintf("key must be 1-%d characters from letters, digits and _.-", MaxMetaKeyLen))
		}
		if !validText(val, MaxMetaValLen) {
			v.Add("meta."+k, fmt.Sprintf("value must be at most %d printable characters", MaxMetaValLen))
		}
	}
}

func validateChecks(v *ValidationError, checks []Check) {
	maint := 0
	for i := range checks {
		if checks[i].Type == CheckMaintenance {
			maint++
		}
	}
	if len(checks)-maint > MaxChecks {
		v.Add("checks", fmt.Sprintf("at most %d checks", MaxChecks))
		return
	}
	if maint > MaxMaintenanceChecks {
		v.Add("checks", fmt.Sprintf("at most %d maintenance checks", MaxMaintenanceChecks))
		return
	}
	seen := map[string]bool{}
	ttls := 0
	for i := range checks {
		c := &checks[i]
		f := "checks[" + strconv.Itoa(i) + "]."
		if c.ID == "" {
			c.ID = string(c.Type)
			if c.Type != CheckTTL {
				c.ID = string(c.Type) + "-" + strconv.Itoa(i)
			}
		}
		if !ValidID(c.ID) {
			v.Add(f+"id", "must be 1-128 characters from letters, digits and -_.:@+~")
		} else if seen[c.ID] {
			v.Add(f+"id", "duplicate check id")
		}
		seen[c.ID] = true
		if !validText(c.Name, MaxTextLen) {
			v.Add(f+"name", "too long or not printable")
		}
		switch c.Type {
		case CheckTTL:
			ttls++
			if ttls > 1 {
				v.Add(f+"type", "at most one ttl check")
			}
			if c.TTL.D() < time.Second || c.TTL.D() > MaxDuration {
				v.Add(f+"ttl", "must be between 1s and 24h")
			}
			if c.Target != "" {
				v.Add(f+"target", "a ttl check has no target")
			}
			if c.Status == "" {
				c.Status = Passing // the registration is the first heartbeat
			}
		case CheckHTTP, CheckTCP, CheckGRPC:
			validateActive(v, f, c)
			if c.Status == "" {
				c.Status = Critical // until the first run passes
			}
		case CheckMaintenance:
			validateMaintenance(v, f, c)
			if c.Status == "" {
				c.Status = Critical // registering one is entering maintenance
			}
		default:
			v.Add(f+"type", "must be one of ttl, http, tcp, grpc, maintenance")
		}
		if c.Status != "" && !c.Status.Valid() {
			v.Add(f+"status", "must be passing, warning or critical")
		}
		if c.DeregisterAfter < 0 || c.DeregisterAfter.D() > MaxDuration {
			v.Add(f+"deregister_after", "must be between 0 and 24h")
		}
		if !validText(c.Output, MaxOutputLen) {
			v.Add(f+"output", "too long or not printable")
		}
		if c.Status != Critical {
			c.CriticalSince = time.Time{}
		}
	}
}

func validateActive(v *ValidationError, f string, c *Check) {
	if c.Interval == 0 {
		c.Interval = Duration(DefaultCheckInterval)
	}
	if c.Timeout == 0 {
		c.Timeout = Duration(min(DefaultCheckTimeout, c.Interval.D()))
	}
	if c.FailuresBeforeCritical == 0 {
		c.FailuresBeforeCritical = DefaultFailuresBeforeCritical
	}
	if c.SuccessesBeforePassing == 0 {
		c.SuccessesBeforePassing = DefaultSuccessesBeforePassing
	}
	if c.Interval.D() < MinCheckInterval || c.Interval.D() > MaxDuration {
		v.Add(f+"interval", "must be between 100ms and 24h")
	}
	if c.Timeout.D() <= 0 || c.Timeout.D() > c.Interval.D() {
		v.Add(f+"timeout", "must be positive and at most the interval")
	}
	if c.FailuresBeforeCritical < 1 || c.FailuresBeforeCritical > 100 {
		v.Add(f+"failures_before_critical", "must be between 1 and 100")
	}
	if c.SuccessesBeforePassing < 1 || c.SuccessesBeforePassing > 100 {
		v.Add(f+"successes_before_passing", "must be between 1 and 100")
	}
	if c.TTL != 0 {
		v.Add(f+"ttl", "only a ttl check has a ttl")
	}
	switch c.Type {
	case CheckHTTP:
		u, err := url.Parse(c.Target)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			v.Add(f+"target", "must be an http:// or https:// URL")
		}
	case CheckTCP:
		if !validHostPort(c.Target) {
			v.Add(f+"target", "must be host:port")
		}
	case CheckGRPC:
		hp, _, _ := strings.Cut(c.Target, "/")
		if !validHostPort(hp) {
			v.Add(f+"target", "must be host:port or host:port/service")
		}
	}
}

// validateMaintenance: a maintenance check is only an ID, a name, a
// status and an output (the reason); nothing runs it and nothing removes
// the instance for it.
func validateMaintenance(v *ValidationError, f string, c *Check) {
	for _, x := range []struct {
		field string
		set   bool
	}{
		{"target", c.Target != ""}, {"interval", c.Interval != 0}, {"timeout", c.Timeout != 0}, {"ttl", c.TTL != 0},
		{"failures_before_critical", c.FailuresBeforeCritical != 0},
		{"successes_before_passing", c.SuccessesBeforePassing != 0},
		{"deregister_after", c.DeregisterAfter != 0},
	} {
		if x.set {
			v.Add(f+x.field, "a maintenance check has none")
		}
	}
}

func validHostPort(s string) bool {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return false
	}
	p, err := strconv.Atoi(port)
	return err == nil && p >= 1 && p <= 65535 && ValidAddress(host)
}

// CleanOutput makes check output storable: valid UTF-8, at most
// MaxOutputLen bytes, cut on a character boundary.
func CleanOutput(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= MaxOutputLen {
		return s
	}
	cut := MaxOutputLen
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}
