package ari

import (
	"fmt"
	"time"
)

// CallerID is a name/number pair as ARI reports it ("caller", "connected").
type CallerID struct {
	Name   string `json:"name"`
	Number string `json:"number"`
}

// DialplanCEP is a channel's position in the dialplan (context, extension, priority) and the
// application running there.
type DialplanCEP struct {
	Context  string `json:"context"`
	Exten    string `json:"exten"`
	Priority int64  `json:"priority"`
	AppName  string `json:"app_name"`
	AppData  string `json:"app_data"`
}

// Channel is ARI's Channel model. The field order matches what Asterisk 22 emits, so a
// Channel marshalled by aritest looks like Asterisk's own JSON.
type Channel struct {
	// ID is the channel's unique id: the same value as AMI's Uniqueid.
	ID         string   `json:"id"`
	Name       string   `json:"name"`
	State      string   `json:"state"`
	ProtocolID string   `json:"protocol_id"`
	Caller     CallerID `json:"caller"`
	Connected  CallerID `json:"connected"`
	// Accountcode is the channel's CDR account code.
	Accountcode string      `json:"accountcode"`
	Dialplan    DialplanCEP `json:"dialplan"`
	// Creationtime is kept as Asterisk's text ("2026-11-24T01:26:55.284+0000"); Created parses it.
	Creationtime string `json:"creationtime"`
	Language     string `json:"language"`
	// ChannelVars holds the variables listed in ari.conf "channelvars"; nil when none are
	// configured. An unset variable is present with an empty value.
	ChannelVars map[string]string `json:"channelvars,omitempty"`
	CallerRDNIS string            `json:"caller_rdnis,omitempty"`
	TenantID    string            `json:"tenantid,omitempty"`
}

// Created parses Creationtime.
func (c *Channel) Created() (time.Time, error) { return ParseTime(c.Creationtime) }

// Bridge is ARI's Bridge model.
type Bridge struct {
	ID          string `json:"id"`
	Technology  string `json:"technology"`
	BridgeType  string `json:"bridge_type"`
	BridgeClass string `json:"bridge_class"`
	Creator     string `json:"creator"`
	Name        string `json:"name"`
	// Channels lists the ids of the channels in the bridge when the event or reply was made.
	Channels      []string `json:"channels"`
	Creationtime  string   `json:"creationtime,omitempty"`
	VideoMode     string   `json:"video_mode,omitempty"`
	VideoSourceID string   `json:"video_source_id,omitempty"`
}

// Created parses Creationtime.
func (b *Bridge) Created() (time.Time, error) { return ParseTime(b.Creationtime) }

// DeviceState is ARI's DeviceState model.
type DeviceState struct {
	Name  string `json:"name"`
	State string `json:"state"`
}

// AsteriskInfo is the reply of GET /ari/asterisk/info. Every part is optional in ARI.
type AsteriskInfo struct {
	Build  BuildInfo  `json:"build"`
	System SystemInfo `json:"system"`
	Config ConfigInfo `json:"config"`
	Status StatusInfo `json:"status"`
}

// BuildInfo describes how Asterisk was built.
type BuildInfo struct {
	OS      string `json:"os"`
	Kernel  string `json:"kernel"`
	Machine string `json:"machine"`
	Options string `json:"options"`
	Date    string `json:"date"`
	User    string `json:"user"`
}

// SystemInfo names the running Asterisk.
type SystemInfo struct {
	Version  string `json:"version"`
	EntityID string `json:"entity_id"`
}

// ConfigInfo is Asterisk's main configuration as ARI reports it.
type ConfigInfo struct {
	Name            string    `json:"name"`
	DefaultLanguage string    `json:"default_language"`
	MaxChannels     int       `json:"max_channels,omitempty"`
	MaxOpenFiles    int       `json:"max_open_files,omitempty"`
	MaxLoad         float64   `json:"max_load,omitempty"`
	SetID           SetIDInfo `json:"setid"`
}

// SetIDInfo is the user and group Asterisk runs as.
type SetIDInfo struct {
	User  string `json:"user"`
	Group string `json:"group"`
}

// StatusInfo carries Asterisk's start and last reload times (Asterisk's text format).
type StatusInfo struct {
	StartupTime    string `json:"startup_time"`
	LastReloadTime string `json:"last_reload_time"`
}

// Asterisk writes times as "2026-11-24T01:23:00.263+0000" (milliseconds, numeric zone without
// a colon). Go's parser accepts a fractional second that the layout does not mention, so one
// layout covers the forms with and without milliseconds.
const asteriskTimeLayout = "2006-01-02T15:04:05-0700"

// TimeLayout formats a time the way Asterisk writes it in ARI JSON.
const TimeLayout = "2006-01-02T15:04:05.000-0700"

// ParseTime parses an ARI timestamp ("2026-11-24T01:23:00.263+0000"); RFC 3339 is accepted too.
func ParseTime(s string) (time.Time, error) {
	if t, err := time.Parse(asteriskTimeLayout, s); err == nil {
		return t, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("ari: timestamp %q is neither Asterisk's %s nor RFC 3339", s, TimeLayout)
	}
	return t, nil
}
