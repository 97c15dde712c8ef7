package calls

import (
	"path"
	"strconv"
	"strings"
)

// Channel variables the tracker reads, by their upper-case name without the "__"
// inheritance prefix. Both OMniLeads namings are accepted: Set 1 / OML 2.x
// (OMLUNIQUEID, OMLCODCLI, OMLCAMPRECFILENAME) and Set 2 (OMLCALLID, OMLCONTACTID,
// OMLRECFILENAME).
const (
	varCallID        = "OMLCALLID"
	varUniqueID      = "OMLUNIQUEID"
	varCampID        = "OMLCAMPID"
	varCampTransfer  = "OMLCAMPTRANSFERID" // campaign of a campaign transfer: wins over OMLCAMPID
	varCampType      = "OMLCAMPTYPE"
	varCallTypeID    = "OMLCALLTYPEID"
	varOutNum        = "OMLOUTNUM"
	varCodCli        = "OMLCODCLI"
	varContactID     = "OMLCONTACTID"
	varAgentID       = "OMLAGENTID"
	varCampRecFile   = "OMLCAMPRECFILENAME"
	varRecFile       = "OMLRECFILENAME"
	varCampRec       = "OMLCAMPREC"
	varMixMonitor    = "MIXMONITOR_FILENAME"
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

// siblingName returns the other half of a Local channel pair ("Local/x@ctx-00000001;1"
// ↔ ";2"), or "" for any other channel.
func siblingName(name string) string {
	if !strings.HasPrefix(name, "Local/") || len(name) < 3 || name[len(name)-2] != ';' {
		return ""
	}
	switch name[len(name)-1] {
	case '1':
		return name[:len(name)-1] + "2"
	case '2':
		return name[:len(name)-1] + "1"
	}
	return ""
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
