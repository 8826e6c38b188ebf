package httpapi

import (
	"errors"
	"fmt"
	"io"
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
// The upload is checked in full before anything is replaced; one past
// MaxSnapshotBytes is refused with 413, whatever it was passed to (the
// store, or the leader through the cluster), since the limit is this
// request's.
func (a *API) snapshotRestore(w http.ResponseWriter, r *http.Request) {
	body := &limitedBody{r: http.MaxBytesReader(w, r.Body, a.cfg.MaxSnapshotBytes)}
	if err := a.snaps.Restore(body); err != nil {
		if body.over != nil {
			err = fmt.Errorf("snapshot larger than %d bytes (-snapshot-max-bytes): %w", body.over.Limit, registry.ErrTooLarge)
		}
		writeError(w, err)
		return
	}
	a.cache.Clear()
	idx := a.reg.LastIndex()
	setIndex(w, idx)
	writeJSON(w, http.StatusOK, map[string]any{"restored": true, "index": idx})
}

// limitedBody remembers that the body went past its limit, however the
// error is wrapped (or lost) on its way back.
type limitedBody struct {
	r    io.Reader
	over *http.MaxBytesError
}

func (b *limitedBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	var large *http.MaxBytesError
	if errors.As(err, &large) {
		b.over = large
	}
	return n, err
}
