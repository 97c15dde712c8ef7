package calls

import (
	"path"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Channel variables the tracker reads, by their upper-case name without the "__"
// inheritance prefix. Both OMniLeads namings are accepted: Set 1 / OML 2.x
// (OMLUNIQUEID, OMLCODCLI, OMLCAMPRECFILENAME) and Set 2 (OMLCALLID, OMLCONTACTID,
// OMLRECFILENAME).
const (
	varCallID       = "OMLCALLID"
	varUniqueID     = "OMLUNIQUEID"
	varCampID       = "OMLCAMPID"
	varCampTransfer = "OMLCAMPTRANSFERID" // campaign of a campaign transfer: wins over OMLCAMPID
	varCampType     = "OMLCAMPTYPE"
	varCallTypeID   = "OMLCALLTYPEID"
	varOutNum       = "OMLOUTNUM"
	varCodCli       = "OMLCODCLI"
	varContactID    = "OMLCONTACTID"
	varAgentID      = "OMLAGENTID"
	varCampRecFile  = "OMLCAMPRECFILENAME"
	varRecFile      = "OMLRECFILENAME"
	varCampRec      = "OMLCAMPREC"
	varMixMonitor   = "MIXMONITOR_FILENAME"
	// varPrefixOML starts every OMniLeads variable. Variables with it, varMixMonitor and
	// the dialplan prefixes are all the tracker keeps (interesting, AMIVarSetFilter).
	varPrefixOML     = "OML"
	varMotherChan    = "OMLMOTHERCHAN"
	varCustomVarList = "OMLCUSTOMDIALPLANVARS"
	varQueueHold     = "QEHOLDTIME" // app_queue, with setqueueentryvar: seconds the caller waited
)

// Names of Connected fields reported in Connected.Missing.
const (
	FieldCallID        = "CallID"
	FieldAgentID       = "AgentID"
	FieldCampaignID    = "CampaignID"
	FieldCampaignType  = "CampaignType"
	FieldPhone         = "Phone"
	FieldContactID     = "ContactID"
	FieldRecordingFile = "RecordingFile"
	// FieldCallWaitDuration: a queue call recovered after a reconnect, whose hold time
	// Asterisk only reports in AgentConnect (or QEHOLDTIME with setqueueentryvar).
	FieldCallWaitDuration = "CallWaitDuration"
	// FieldDialplanPrefix + name: a variable named in OMLCUSTOMDIALPLANVARS (or in
	// Options.DialplanVars) had no value.
	FieldDialplanPrefix = "Dialplan:"
)

// varEntry is one stored channel variable.
type varEntry struct {
	key       string // upper case, no "__"
	name      string // as set, no "__" (dialplan data keeps the author's spelling)
	value     string
	inherited bool // set with a "_"/"__" prefix
}

// stripInherit removes the "_" / "__" inheritance prefix.
func stripInherit(name string) (string, bool) {
	if strings.HasPrefix(name, "__") {
		return name[2:], true
	}
	if strings.HasPrefix(name, "_") {
		return name[1:], true
	}
	return name, false
}

// hasPrefixFold reports whether s starts with prefix, ASCII case-insensitively.
func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// upperASCII returns s in upper case, without allocating when it already is.
func upperASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'a' && c <= 'z' {
			return strings.ToUpper(s)
		}
	}
	return s
}

// extensionOf returns the agent extension a channel name carries: "PJSIP/1001-0000002a",
// "SIP/1001-00000001" and "Local/1003@oml-agent-0000000d;1" all give the digits before
// the first '-' or '@'; "" when that part is not all digits.
func extensionOf(name string) string {
	slash := strings.IndexByte(name, '/')
	if slash < 0 {
		return ""
	}
	rest := name[slash+1:]
	end := strings.IndexAny(rest, "-@;")
	if end < 0 {
		end = len(rest)
	}
	ext := rest[:end]
	if ext == "" {
		return ""
	}
	for i := 0; i < len(ext); i++ {
		if ext[i] < '0' || ext[i] > '9' {
			return ""
		}
	}
	return ext
}

// isLocalHalf reports whether name is one half of a Local channel pair (siblingName is
// not empty), without building the other half's name.
func isLocalHalf(name string) bool {
	if !strings.HasPrefix(name, "Local/") || len(name) < 3 || name[len(name)-2] != ';' {
		return false
	}
	c := name[len(name)-1]
	return c == '1' || c == '2'
}

// localPair reports whether b is the other half of a's Local channel pair
// (siblingName(a) != "" && siblingName(a) == b), without allocating.
func localPair(a, b string) bool {
	n := len(a)
	return isLocalHalf(a) && len(b) == n && b[n-1] == a[n-1]^('1'^'2') && a[:n-1] == b[:n-1]
}

// sameKey reports whether key == upperASCII(name) (ascii: name has no byte >= 0x80)
// without allocating for an ASCII name.
func sameKey(key, name string, ascii bool) bool {
	if !ascii {
		return key == upperASCII(name)
	}
	if len(key) != len(name) {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		if c != key[i] {
			return false
		}
	}
	return true
}

// asciiCase reports whether s has no byte >= 0x80 and whether it has an ASCII
// lower-case letter (upperASCII would change it).
func asciiCase(s string) (ascii, lower bool) {
	ascii = true
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= utf8.RuneSelf:
			ascii = false
		case 'a' <= c && c <= 'z':
			lower = true
		}
	}
	return ascii, lower
}

// newVarEntry copies a variable out of the event (its strings may point into a buffer
// the source reuses): key (upperASCII(name)), name and value share one allocation.
// ascii and lower are asciiCase(name).
func newVarEntry(name, value string, inherited, ascii, lower bool) varEntry {
	var b strings.Builder
	n := len(name)
	if lower && !ascii {
		key := strings.ToUpper(name) // upperASCII's Unicode case: a string of its own
		b.Grow(n + len(value))
		b.WriteString(name)
		b.WriteString(value)
		s := b.String()
		return varEntry{key: key, name: s[:n], value: s[n:], inherited: inherited}
	}
	if !lower {
		b.Grow(n + len(value))
		b.WriteString(name)
		b.WriteString(value)
		s := b.String()
		return varEntry{key: s[:n], name: s[:n], value: s[n:], inherited: inherited}
	}
	b.Grow(2*n + len(value))
	for i := 0; i < n; i++ {
		c := name[i]
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		b.WriteByte(c)
	}
	b.WriteString(name)
	b.WriteString(value)
	s := b.String()
	return varEntry{key: s[:n], name: s[n : 2*n], value: s[2*n:], inherited: inherited}
}

// siblingName returns the other half of a Local channel pair ("Local/x@ctx-00000001;1"
// ↔ ";2"), or "" for any other channel.
func siblingName(name string) string {
	if !isLocalHalf(name) {
		return ""
	}
	n := len(name)
	return name[:n-1] + string(name[n-1]^('1'^'2'))
}

// agentIDFromMember parses a queue MemberName "<agent id>_<name>"; 0 when it has no
// such id.
func agentIDFromMember(member string) int {
	i := strings.IndexByte(member, '_')
	if i <= 0 {
		return 0
	}
	n, err := strconv.Atoi(member[:i])
	if err != nil || n <= 0 {
		return 0
	}
	return n
}

// recordingFile turns OMLCAMPRECFILENAME / OMLRECFILENAME (a base name without
// extension) or MIXMONITOR_FILENAME (a full path) into the recording's file name.
func recordingFile(recName, mixMonitor string) string {
	if recName != "" {
		recName = path.Base(recName)
		if path.Ext(recName) == ".wav" || path.Ext(recName) == ".mp3" || path.Ext(recName) == ".gsm" {
			return recName
		}
		return recName + ".wav"
	}
	if mixMonitor != "" {
		return path.Base(mixMonitor)
	}
	return ""
}

// notRecorded reports whether OMLCAMPREC says the campaign does not record.
func notRecorded(v string) bool {
	switch strings.ToLower(v) {
	case "false", "no", "0", "off":
		return true
	}
	return false
}

// splitVarList splits OMLCUSTOMDIALPLANVARS ("A&B&C").
func splitVarList(list string) []string {
	var names []string
	for _, n := range strings.Split(list, "&") {
		n = strings.TrimSpace(n)
		if n != "" {
			names = append(names, n)
		}
	}
	return names
}

// DialplanValue returns the dialplan-data value named name, comparing names
// case-insensitively (OMniLeads stores the parameter source capitalised, "Omlcrmticket",
// while the dialplan may set "OMLCRMTICKET"), and whether it was present.
func (c Connected) DialplanValue(name string) (string, bool) {
	if v, ok := c.Dialplan[name]; ok {
		return v, true
	}
	for k, v := range c.Dialplan {
		if strings.EqualFold(k, name) {
			return v, true
		}
	}
	return "", false
}
