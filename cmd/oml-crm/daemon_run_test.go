package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/omlcrm/oml-crm/config"
)

func TestChangedKeys(t *testing.T) {
	a := config.Default()
	b := config.Default()
	if got := changedKeys(a, b); len(got) != 0 {
		t.Errorf("identical configurations differ in %v", got)
	}
	b.Log.Level = "debug"
	b.AgentWS.PopTTL = time.Minute
	b.Delivery.Sites = map[string]config.DeliverySite{"3": {SigningSecret: "0123456789abcdef"}}
	b.Asterisk.AMI.Events = []string{"Hangup"}
	want := []string{"agentws.pop_ttl", "asterisk.ami.events", "delivery.sites", "log.level"}
	if got := changedKeys(a, b); !reflect.DeepEqual(got, want) {
		t.Errorf("changedKeys = %v, want %v", got, want)
	}
	// Every key of the configuration is compared.
	flat := map[string]any{}
	flattenConfig(reflect.ValueOf(*a), "", flat)
	for _, k := range config.Keys() {
		if _, ok := flat[k]; !ok {
			t.Errorf("key %s is not compared on reload", k)
		}
	}
}

func TestSigningSecretsKeys(t *testing.T) {
	cfg := config.Default()
	cfg.Delivery.Sites = map[string]config.DeliverySite{"3": {SigningSecret: "0123456789abcdef"}}
	got, err := signingSecrets(cfg)
	if err != nil || got[3] != "0123456789abcdef" {
		t.Errorf("signingSecrets = %v, %v", got, err)
	}
	cfg.Delivery.Sites = map[string]config.DeliverySite{"crm": {}}
	if _, err := signingSecrets(cfg); err == nil {
		t.Error("a non-numeric site key must be refused")
	}
}

// oml-crm.example.yaml documents every key with its default: loading it gives exactly
// the defaults.
func TestExampleConfigIsTheDefaults(t *testing.T) {
	path := filepath.Join("..", "..", "oml-crm.example.yaml")
	cfg, err := config.Load(path, nil)
	if err != nil {
		t.Fatalf("loading %s: %v", path, err)
	}
	want := config.Default()
	want.Delivery.PostgresURL = want.Database.URL // Load fills it from database.url
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("%s differs from the defaults:\n%+v\nwant\n%+v", path, cfg, want)
	}
	body, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range config.Keys() {
		leaf := k[strings.LastIndex(k, ".")+1:]
		if !strings.Contains(string(body), "\n"+strings.Repeat(" ", 2*strings.Count(k, "."))+leaf+":") {
			t.Errorf("%s does not document %s", path, k)
		}
	}
}
