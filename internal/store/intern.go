package store

import (
	"slices"
	"strings"
	"unique"

	"github.com/rosterhq/roster/internal/registry"
)

// interner makes instances that say the same thing share memory: the
// strings a fleet repeats (service, zone, tags, metadata, check fields)
// become one canonical copy each, and instances with the same tag list or
// the same metadata share one slice or map. Stored instances are never
// changed in place (writers clone first), so sharing is safe.
//
// It is purely an optimisation: an instance that is not interned is just
// as correct. The tag and metadata tables are bounded; when one fills up
// it starts over, so rarely used sets cannot pin memory for long.
type interner struct {
	tags map[string][]string
	meta map[string]map[string]string
	max  int
	key  strings.Builder
}

const internMaxSets = 1 << 14

func newInterner() *interner {
	return &interner{tags: map[string][]string{}, meta: map[string]map[string]string{}, max: internMaxSets}
}

func str(s string) string {
	if s == "" {
		return ""
	}
	return unique.Make(s).Value()
}

// instance rewrites in's fields to their canonical copies. in must not be
// visible to readers yet.
func (n *interner) instance(in *registry.Instance) {
	in.Service = str(in.Service)
	in.Zone = str(in.Zone)
	in.Region = str(in.Region)
	in.Revision = str(in.Revision)
	in.Repo = str(in.Repo)
	in.Health = registry.Health(str(string(in.Health)))
	if cap(in.Checks) > len(in.Checks) {
		// A decoded slice has room to grow (encoding/json allocates at
		// least four): a few hundred bytes per instance for nothing.
		in.Checks = slices.Clone(in.Checks)
	}
	for i := range in.Checks {
		c := &in.Checks[i]
		c.ID = str(c.ID)
		c.Name = str(c.Name)
		c.Type = registry.CheckType(str(string(c.Type)))
		c.Status = registry.Health(str(string(c.Status)))
	}
	in.Tags = n.tagSet(in.Tags)
	in.Meta = n.metaSet(in.Meta)
}

func (n *interner) tagSet(tags []string) []string {
	if len(tags) == 0 {
		return nil
	}
	n.key.Reset()
	for _, t := range tags {
		n.key.WriteString(t)
		n.key.WriteByte(0)
	}
	k := n.key.String()
	if got, ok := n.tags[k]; ok {
		return got
	}
	out := make([]string, len(tags))
	for i, t := range tags {
		out[i] = str(t)
	}
	if len(n.tags) >= n.max {
		clear(n.tags)
	}
	n.tags[k] = out
	return out
}

func (n *interner) metaSet(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	n.key.Reset()
	for _, k := range keys {
		n.key.WriteString(k)
		n.key.WriteByte(0)
		n.key.WriteString(m[k])
		n.key.WriteByte(0)
	}
	k := n.key.String()
	if got, ok := n.meta[k]; ok {
		return got
	}
	out := make(map[string]string, len(m))
	for _, k := range keys {
		out[str(k)] = str(m[k])
	}
	if len(n.meta) >= n.max {
		clear(n.meta)
	}
	n.meta[k] = out
	return out
}
