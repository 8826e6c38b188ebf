package consulapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/rosterhq/roster/internal/registry"
)

// Consul's service maintenance check: its ID is the prefix and the
// service ID, its name and default notes are Consul's.
const (
	serviceMaintPrefix        = "_service_maintenance:"
	serviceMaintName          = "Service Maintenance Mode"
	defaultServiceMaintReason = "Maintenance mode is enabled for this service, but no reason was provided. This is a default message."
)

// agentMaintenance answers PUT /v1/agent/service/maintenance/{id}
// ?enable=true|false&reason=: enabling adds the critical maintenance
// check _service_maintenance:<id> (registry.Service.EnableMaintenance),
// which keeps the instance out of passing answers in every front door
// until it is disabled; disabling removes it. Either is a no-op when
// already so. 200 with no body.
func (a *API) agentMaintenance(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	q := r.URL.Query()
	if _, ok := q["enable"]; !ok {
		writeText(w, http.StatusBadRequest, "Missing value for enable")
		return
	}
	raw := q.Get("enable")
	enable, err := strconv.ParseBool(raw)
	if err != nil {
		writeText(w, http.StatusBadRequest, fmt.Sprintf("Invalid value for enable: %q", raw))
		return
	}
	in, err := a.findInstance(r.Context(), id)
	if err == nil {
		checkID := serviceMaintPrefix + in.ID
		if enable {
			reason := q.Get("reason")
			if reason == "" {
				reason = defaultServiceMaintReason
			}
			_, err = a.reg.EnableMaintenance(r.Context(), in.Key(), registry.Maintenance{CheckID: checkID, Name: serviceMaintName, Reason: reason})
		} else {
			_, err = a.reg.DisableMaintenance(r.Context(), in.Key(), checkID)
		}
	}
	switch {
	case errors.Is(err, registry.ErrNotFound):
		a.writeError(w, unknownService(id))
	case errors.Is(err, registry.ErrConflict):
		writeText(w, http.StatusConflict, "CheckID "+strconv.Quote(serviceMaintPrefix+id)+" is taken by a check that is not a maintenance check")
	case err != nil:
		a.writeError(w, err)
	default:
		a.setLeaderHeaders(w)
		writeOK(w)
	}
}

// dropMaintenance removes in's maintenance checks: a registration with
// ?replace-existing-checks replaces every check of the service, Consul's
// maintenance check included.
func (a *API) dropMaintenance(ctx context.Context, in *registry.Instance) error {
	for i := range in.Checks {
		c := &in.Checks[i]
		if c.Type != registry.CheckMaintenance {
			continue
		}
		if _, err := a.reg.DisableMaintenance(ctx, in.Key(), c.ID); err != nil && !errors.Is(err, registry.ErrNotFound) {
			return fmt.Errorf("lift maintenance %s of %s: %w", c.ID, in.ID, err)
		}
	}
	return nil
}
