package httpapi

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/rosterhq/roster/internal/registry"
)

// IndexHeader carries the index of every read and write response.
const IndexHeader = "X-Roster-Index"

func setIndex(w http.ResponseWriter, idx uint64) {
	w.Header().Set(IndexHeader, strconv.FormatUint(max(idx, 1), 10))
}

func key(r *http.Request) registry.Key {
	return registry.Key{Service: r.PathValue("service"), ID: r.PathValue("id")}
}

// create registers an instance under a generated ID unless the body has one.
func (a *API) create(w http.ResponseWriter, r *http.Request) { a.register(w, r, "") }

// upsert creates or replaces the instance named by the path.
func (a *API) upsert(w http.ResponseWriter, r *http.Request) { a.register(w, r, r.PathValue("id")) }

func (a *API) register(w http.ResponseWriter, r *http.Request, pathID string) {
	var b instanceBody
	if err := decodeJSON(w, r, &b); err != nil {
		writeError(w, err)
		return
	}
	v := &registry.ValidationError{}
	service := r.PathValue("service")
	if b.Service != "" && registry.NormalizeName(b.Service) != registry.NormalizeName(service) {
		v.Add("service", "differs from the service in the path")
	}
	if pathID != "" && b.ID != "" && b.ID != pathID {
		v.Add("id", "differs from the id in the path")
	}
	in := b.toInstance(v)
	in.Service = service
	if pathID != "" {
		in.ID = pathID
	}
	if err := v.Err(); err != nil {
		// Report these together with the model's own checks.
		var nerr *registry.ValidationError
		if errors.As(registry.Normalize(in), &nerr) {
			v.Fields = append(v.Fields, nerr.Fields...)
		}
		writeError(w, v.Err())
		return
	}
	res, err := a.reg.Register(r.Context(), in)
	if err != nil {
		writeError(w, err)
		return
	}
	setIndex(w, res.Index)
	status := http.StatusOK
	if res.Created {
		status = http.StatusCreated
		w.Header().Set("Location", "/v1/services/"+in.Service+"/instances/"+in.ID)
	}
	writeJSON(w, status, toInstanceOut(res.Instance))
}

func (a *API) get(w http.ResponseWriter, r *http.Request) {
	v := &registry.ValidationError{}
	blk := parseBlocking(r.URL.Query(), v)
	if err := v.Err(); err != nil {
		writeError(w, err)
		return
	}
	in, idx, err := a.reg.Instance(r.Context(), key(r), blk.index, blk.wait)
	if idx > 0 {
		setIndex(w, idx)
	}
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, toInstanceOut(in))
}

func (a *API) deregister(w http.ResponseWriter, r *http.Request) {
	idx, err := a.reg.Deregister(r.Context(), key(r))
	if err != nil {
		writeError(w, err)
		return
	}
	setIndex(w, idx)
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) heartbeat(w http.ResponseWriter, r *http.Request) {
	if err := a.reg.Heartbeat(r.Context(), key(r)); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// MaxBatchHeartbeats bounds one batch renewal.
const MaxBatchHeartbeats = 10000

type heartbeatsBody struct {
	Instances []wireKey `json:"instances"`
}

type heartbeatsResult struct {
	Renewed  int       `json:"renewed"`
	NotFound []wireKey `json:"not_found"`
	NoTTL    []wireKey `json:"no_ttl,omitempty"`
}

// heartbeats renews many leases in one request: the path for a sidecar or
// SDK that keeps many instances alive over one connection. Instances the
// registry does not know are listed so the caller registers them again.
func (a *API) heartbeats(w http.ResponseWriter, r *http.Request) {
	var b heartbeatsBody
	if err := decodeJSON(w, r, &b); err != nil {
		writeError(w, err)
		return
	}
	if len(b.Instances) > MaxBatchHeartbeats {
		writeError(w, badRequest("instances", "at most "+strconv.Itoa(MaxBatchHeartbeats)+" per request"))
		return
	}
	res := heartbeatsResult{NotFound: []wireKey{}}
	for _, k := range b.Instances {
		err := a.reg.Heartbeat(r.Context(), registry.Key(k))
		switch {
		case err == nil:
			res.Renewed++
		case registry.KindOf(err) == registry.KindNotFound:
			res.NotFound = append(res.NotFound, k)
		case registry.KindOf(err) == registry.KindNoTTL:
			res.NoTTL = append(res.NoTTL, k)
		default:
			writeError(w, err)
			return
		}
	}
	writeJSON(w, http.StatusOK, res)
}
