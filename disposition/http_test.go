package disposition_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/omlcrm/oml-crm/agentws"
	"github.com/omlcrm/oml-crm/catalog/file"
	"github.com/omlcrm/oml-crm/crmnotify"
	"github.com/omlcrm/oml-crm/crmnotify/delivery"
	"github.com/omlcrm/oml-crm/disposition"
)

var httpSecret = []byte("0123456789abcdef0123456789abcdef")

// POST /dispositions with the file catalog: an agent token names the agent; each save
// fires once (a retried post with the same save_id is not sent twice); the form is
// rendered as Django's urlsafe base64 of the form text as posted (computed with
// Python: base64.urlsafe_b64encode(b'{"a": "ñ"}').rstrip(b"=")); bad tokens and bodies are refused.
func TestDispositionHTTPPost(t *testing.T) {
	ctx := context.Background()
	crm := newDispCRM(t)
	cat, err := file.Parse("c.yaml", []byte(`
sites:
  - {id: 11, name: dispo, url: "`+crm.srv.URL+`/dispo", trigger: disposition, method: POST, format: json}
  - {id: 5, name: srv, url: "`+crm.srv.URL+`/srv", trigger: server, method: POST, format: json}
contact_databases:
  - {id: 1, columns: [telefono, nombre]}
campaigns:
  - id: 12
    name: Preview
    type: preview
    site: 11
    contact_database: 1
    params:
      - {family: call, source: call_id, name: call}
      - {family: call, source: agent_id, name: agent}
      - {family: disposition, source: name, name: dispName}
      - {family: disposition, source: form, name: form}
  - {id: 2, name: Dialer, type: dialer, site: 5, contact_database: 1}
agents:
  - {id: 4, username: agente4, name: "Martín", sip_extension: 1004}
`))
	if err != nil {
		t.Fatal(err)
	}
	q, err := delivery.Open(ctx, delivery.Options{Store: "sqlite:" + filepath.Join(t.TempDir(), "q.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	hub, err := agentws.New(agentws.Options{Auth: agentws.AuthToken, TokenSecret: httpSecret, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hub.Close() })
	disp, err := crmnotify.NewDispatcher(crmnotify.DispatcherOptions{Catalog: cat, Server: q, Agents: hub})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(disposition.HTTPHandler(httpSecret, disp.HandleDisposition))
	t.Cleanup(srv.Close)
	tok, _ := agentws.MintToken(httpSecret, 4, time.Now().Add(time.Hour))
	post := func(token, body string) (int, map[string]string) {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/dispositions", bytes.NewReader([]byte(body)))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]string
		_ = json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m
	}
	body := `{"save_id": "s1", "call_id": "c-1", "campaign_id": 12, "disposition": {"id": 9, "name": "Venta", "form": {"a": "ñ"}}}`
	code, m := post(tok, body)
	if code != http.StatusAccepted || m["phase"] != "disposition" {
		t.Fatalf("post: %d %v", code, m)
	}
	if code2, m2 := post(tok, body); code2 != http.StatusAccepted || m2["id"] != m["id"] {
		t.Errorf("retried post: %d %v, want the same id %s", code2, m2, m["id"])
	}
	waitDelivered(t, crm, 1)
	time.Sleep(50 * time.Millisecond)
	bodies, _ := crm.got()
	if len(bodies) != 1 || bodies[0]["dispName"] != "Venta" || bodies[0]["agent"] != "4" || bodies[0]["form"] != "eyJhIjogIsOxIn0" {
		t.Errorf("CRM got %v, want one disposition of agent 4 with the form encoded", bodies)
	}
	if code, _ := post("", body); code != http.StatusUnauthorized {
		t.Errorf("no token: %d", code)
	}
	if code, _ := post(tok, `{"call_id": ""}`); code != http.StatusBadRequest {
		t.Errorf("bad body: %d", code)
	}
	if code, m := post(tok, strings.Replace(body, `"campaign_id": 12`, `"campaign_id": 2`, 1)); code != http.StatusOK || m["ignored"] == "" {
		t.Errorf("campaign without a disposition site: %d %v", code, m)
	}
}
