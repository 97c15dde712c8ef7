package aritest

import (
	"bytes"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
)

// application is an ARI application as the fake keeps it: registered by its first events
// websocket and gone, with its event filter, when its last one closes. (Asterisk may keep
// a deactivated application a while longer; a client that sets its filter after each
// connect, as oml-crm's does, sees no difference.)
type application struct {
	name         string
	subscribeAll bool
	sessions     int
	filter       atomic.Pointer[eventFilter] // read by Send without the server's lock
}

// eventFilter is an application's filter as PUT /applications/{name}/eventFilter leaves
// it; a nil list is not set.
type eventFilter struct {
	allowed, disallowed []filterEntry
}

// filterEntry is one entry of a list: the object as given (Asterisk keeps it so) and its
// "type".
type filterEntry struct {
	raw json.RawMessage
	typ string
}

// allows is Asterisk's test (stasis_app_event_allowed): not disallowed, and allowed when
// an allowed list is set. An event without a type matches no entry.
func (f *eventFilter) allows(typ []byte) bool {
	return !listed(f.disallowed, typ) && (len(f.allowed) == 0 || listed(f.allowed, typ))
}

func listed(list []filterEntry, typ []byte) bool {
	for _, e := range list {
		if typ != nil && e.typ == string(typ) {
			return true
		}
	}
	return false
}

// raws and types are a list's objects and types, in the order given ([] when not set).
func raws(list []filterEntry) []json.RawMessage {
	out := make([]json.RawMessage, len(list))
	for i, e := range list {
		out[i] = e.raw
	}
	return out
}

func types(list []filterEntry) []string {
	out := make([]string, len(list))
	for i, e := range list {
		out[i] = e.typ
	}
	return out
}

// applicationJSON is ARI's Application model in Asterisk 22's field order.
type applicationJSON struct {
	Name             string            `json:"name"`
	ChannelIDs       []string          `json:"channel_ids"`
	BridgeIDs        []string          `json:"bridge_ids"`
	EndpointIDs      []string          `json:"endpoint_ids"`
	DeviceNames      []string          `json:"device_names"`
	EventsAllowed    []json.RawMessage `json:"events_allowed"`
	EventsDisallowed []json.RawMessage `json:"events_disallowed"`
}

// maxBody is Asterisk's MAX_CONTENT_LENGTH (main/http.c).
const maxBody = 40960

// EventFilterRequests is how many PUT /applications/{name}/eventFilter requests reached
// the server, whatever their answer (refused, no such route, failed or served).
func (s *Server) EventFilterRequests() uint64 { return s.filterPuts.Load() }

// FailEventFilter makes the next n PUT /applications/{name}/eventFilter requests fail
// with status, then serves them again: 500 (Asterisk in trouble) or 400 (the answer to
// a filter Asterisk finds invalid), with Asterisk's body.
func (s *Server) FailEventFilter(n, status int) {
	s.mu.Lock()
	s.filterFail, s.failStatus = n, status
	s.mu.Unlock()
}

// json is the application as GET /applications/{name} shows it; s.mu is held.
func (a *application) json() applicationJSON {
	out := applicationJSON{Name: a.name, ChannelIDs: []string{}, BridgeIDs: []string{}, EndpointIDs: []string{},
		DeviceNames: []string{}, EventsAllowed: []json.RawMessage{}, EventsDisallowed: []json.RawMessage{}}
	if a.subscribeAll {
		// What a subscribeAll application shows on Asterisk 22.
		out.ChannelIDs = []string{"__AST_CHANNEL_ALL_TOPIC"}
		out.BridgeIDs = []string{"__AST_BRIDGE_ALL_TOPIC"}
		out.EndpointIDs = []string{"__AST_ENDPOINT_ALL_TOPIC"}
		out.DeviceNames = []string{"__AST_DEVICE_STATE_ALL_TOPIC"}
	}
	if f := a.filter.Load(); f != nil {
		out.EventsAllowed, out.EventsDisallowed = raws(f.allowed), raws(f.disallowed)
	}
	return out
}

func (s *Server) getApplications(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	list := make([]applicationJSON, 0, len(s.apps))
	for _, n := range slices.Sorted(maps.Keys(s.apps)) {
		list = append(list, s.apps[n].json())
	}
	s.mu.Unlock()
	body, _ := json.Marshal(list)
	writeJSON(w, http.StatusOK, body)
}

func (s *Server) getApplication(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	a := s.apps[r.PathValue("name")]
	var app applicationJSON
	if a != nil {
		app = a.json()
	}
	s.mu.Unlock()
	if a == nil {
		writeJSON(w, http.StatusNotFound, []byte(BodyAppNotFound))
		return
	}
	body, _ := json.Marshal(app)
	writeJSON(w, http.StatusOK, body)
}

// putEventFilter is PUT /applications/{name}/eventFilter as Asterisk 22 handles it: the
// body is read only with Content-Type application/json (parameters after ";" aside), any
// other is no body, and no body clears both lists; a form body is JSON null to the
// handler (400 Invalid format definition). The JSON must be an object or an array
// (jansson's rule: 400 Error parsing request body otherwise), of at most 40,960 bytes
// (413). An object sets "disallowed" then "allowed", each only if present (an empty
// object clears both), and a list that is not an array of objects with a non-empty
// string "type" is refused with 400 (the disallowed list set before stays); an array
// sets both lists to itself.
func (s *Server) putEventFilter(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	fail, status := s.filterFail > 0, s.failStatus
	if fail {
		s.filterFail--
	}
	s.mu.Unlock()
	if fail {
		body := BodyInternalError
		if status == http.StatusBadRequest {
			body = BodyInvalidFilter
		}
		writeJSON(w, status, []byte(body))
		return
	}
	name := r.PathValue("name")
	raw, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, []byte(BodyBadRequestBody))
		return
	}
	if len(raw) > maxBody {
		writeJSON(w, http.StatusRequestEntityTooLarge, []byte(BodyBodyTooLarge))
		return
	}
	ct, _, _ := strings.Cut(r.Header.Get("Content-Type"), ";")
	var body json.RawMessage // nil: no body
	switch {
	case strings.EqualFold(ct, "application/x-www-form-urlencoded") && len(raw) > 0:
		body = json.RawMessage("null")
	case strings.EqualFold(ct, "application/json") && len(raw) > 0:
		if t := bytes.TrimSpace(raw); !json.Valid(raw) || t[0] != '{' && t[0] != '[' {
			writeJSON(w, http.StatusBadRequest, []byte(BodyBadRequestBody))
			return
		}
		body = raw
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.apps[name]
	if a == nil {
		writeJSON(w, http.StatusNotFound, []byte(BodyAppNotFound))
		return
	}
	f := &eventFilter{}
	if old := a.filter.Load(); old != nil {
		*f = *old
	}
	ok := setFilterList(&f.disallowed, body, "disallowed")
	if ok {
		ok = setFilterList(&f.allowed, body, "allowed")
	}
	if f.allowed == nil && f.disallowed == nil {
		a.filter.Store(nil)
	} else {
		a.filter.Store(f)
	}
	if !ok {
		writeJSON(w, http.StatusBadRequest, []byte(BodyInvalidFilter))
		return
	}
	reply, _ := json.Marshal(a.json())
	writeJSON(w, http.StatusOK, reply)
}

// setFilterList is one list's update (Asterisk's app_event_filter_set); false: invalid.
func setFilterList(list *[]filterEntry, body json.RawMessage, key string) bool {
	filter := body
	if t := bytes.TrimSpace(body); len(t) > 0 && t[0] == '{' {
		var obj map[string]json.RawMessage
		if json.Unmarshal(body, &obj) != nil {
			return false
		}
		if len(obj) == 0 {
			filter = nil // an empty object clears the list
		} else if filter = obj[key]; filter == nil {
			return true // the other list only: this one stays
		}
	}
	if filter == nil {
		*list = nil
		return true
	}
	var raw []json.RawMessage
	if t := bytes.TrimSpace(filter); len(t) == 0 || t[0] != '[' || json.Unmarshal(filter, &raw) != nil {
		return false
	}
	entries := make([]filterEntry, len(raw))
	for i, e := range raw {
		var obj map[string]json.RawMessage
		if json.Unmarshal(e, &obj) != nil || json.Unmarshal(obj["type"], &entries[i].typ) != nil || entries[i].typ == "" {
			return false
		}
		entries[i].raw = e
	}
	*list = entries
	return true
}

// EventFilter is the event filter of application app as it stands (the types of its
// allowed and disallowed lists, in the order given); ok false when no events websocket
// holds the application.
func (s *Server) EventFilter(app string) (allowed, disallowed []string, ok bool) {
	s.mu.Lock()
	a := s.apps[app]
	s.mu.Unlock()
	if a == nil {
		return nil, nil, false
	}
	f := a.filter.Load()
	if f == nil {
		return nil, nil, true
	}
	return types(f.allowed), types(f.disallowed), true
}
