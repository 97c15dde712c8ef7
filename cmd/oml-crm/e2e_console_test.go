package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/omlcrm/oml-crm/catalog"
	"github.com/omlcrm/oml-crm/internal/pgtest"
)

// TestE2EFrameRefusedLearnedByTheDaemon: the running daemon probes its embedded sites by
// itself, and a pop of a CRM that refuses framing carries frame_refused; a pop of one that
// allows it does not.
func TestE2EFrameRefusedLearnedByTheDaemon(t *testing.T) {
	s := newE2E(t, "ami")
	locked := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "frame-ancestors 'none'")
	}))
	defer locked.Close()
	// Campaign 11's site (agent GET embedded) moves to the refusing CRM; campaign 12's
	// (agent GET embedded, clean URL) stays on the test CRM, which allows framing.
	pgtest.Exec(t, s.db, fmt.Sprintf(`UPDATE ominicontacto_app_sitioexterno SET url = '%s/ficha' WHERE id = 1`, locked.URL))
	d := s.start(t)
	waitFor(t, 20*time.Second, "the daemon's framing probe of site 1", func() bool {
		return strings.Contains(d.log(), `"framing":"refused"`)
	})
	agent := dialAgent(t, d.base, e2eTokenSecret, e2eAgent1.ID)

	refused := simCall(s.ids, 11, catalog.TypePreview, e2eAgent1, "T-locked")
	s.ast.play(t, refused)
	if p := agent.nextPop(t); p.CallID != refused.CallID || !p.FrameRefused {
		t.Errorf("pop of the refusing CRM: call %s frame_refused %v, want %s true", p.CallID, p.FrameRefused, refused.CallID)
	}
	waitFor(t, 20*time.Second, "the daemon's framing probe of site 2", func() bool {
		return strings.Contains(d.log(), `"framing":"allowed"`)
	})
	open := simCall(s.ids, 12, catalog.TypePreview, e2eAgent1, "T-open")
	s.ast.play(t, open)
	if p := agent.nextPop(t); p.CallID != open.CallID || p.FrameRefused {
		t.Errorf("pop of a CRM that allows framing: call %s frame_refused %v", p.CallID, p.FrameRefused)
	}
	d.stop()
}
