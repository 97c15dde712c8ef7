package daemon

import (
	"reflect"
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
