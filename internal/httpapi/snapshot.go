package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/rosterhq/roster/internal/registry"
)

// snapshotSave streams a consistent snapshot of the whole registry.
func (a *API) snapshotSave(w http.ResponseWriter, r *http.Request) {
	if !a.reg.Ready() {
		writeError(w, registry.ErrNotReady)
		return
	}
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Now().Add(10 * time.Minute))
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Content-Disposition", `attachment; filename="roster.snap"`)
	if err := a.snaps.Save(w); err != nil {
		// Headers are gone; cut the stream so the client sees a failure.
		a.log.Warn("snapshot save failed", "err", err)
		panic(http.ErrAbortHandler)
	}
}

// snapshotRestore replaces the whole registry with an uploaded snapshot.
// The upload is checked in full before anything is replaced.
func (a *API) snapshotRestore(w http.ResponseWriter, r *http.Request) {
	body := http.MaxBytesReader(w, r.Body, a.cfg.MaxSnapshotBytes)
	if err := a.snaps.Restore(body); err != nil {
		var large *http.MaxBytesError
		if errors.As(err, &large) {
			err = badRequest("body", fmt.Sprintf("snapshot larger than %d bytes", large.Limit))
		}
		writeError(w, err)
		return
	}
	a.cache.Clear()
	idx := a.reg.LastIndex()
	setIndex(w, idx)
	writeJSON(w, http.StatusOK, map[string]any{"restored": true, "index": idx})
}
