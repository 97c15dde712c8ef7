package config

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestJSONIDsAsNumbersSites(t *testing.T) {
	if got := Default().Catalog.JSONIDsAsNumbersSites; got == nil || len(got) != 0 {
		t.Errorf("default catalog.json_ids_as_numbers_sites = %#v, want []", got)
	}
	path := writeFile(t, "catalog:\n  json_ids_as_numbers_sites: [3, 7]\n")
	cfg, err := Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg.Catalog.JSONIDsAsNumbersSites, []int{3, 7}) {
		t.Errorf("from file = %v", cfg.Catalog.JSONIDsAsNumbersSites)
	}
	t.Setenv("OMLCRM_CATALOG_JSON_IDS_AS_NUMBERS_SITES", "4,9")
	if cfg, err = Load(path, nil); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg.Catalog.JSONIDsAsNumbersSites, []int{4, 9}) {
		t.Errorf("from env = %v", cfg.Catalog.JSONIDsAsNumbersSites)
	}

	bad := Default()
	bad.Asterisk.AMI.Secret = "s"
	bad.AgentWS.TokenSecret = "0123456789abcdef"
	bad.Catalog.JSONIDsAsNumbersSites = []int{3, 0}
	var ps Problems
	if err := bad.Validate(); !errors.As(err, &ps) || !strings.Contains(err.Error(), "catalog.json_ids_as_numbers_sites") ||
		!strings.Contains(err.Error(), "entry 1 (0)") {
		t.Errorf("site id 0 accepted or not named: %v", err)
	}
	bad.Catalog.JSONIDsAsNumbersSites = []int{3}
	bad.Catalog.Source, bad.Catalog.File = "file", "/x.yaml"
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "json_ids_as_numbers on the site") {
		t.Errorf("file catalog with the omldb key accepted: %v", err)
	}
}

func TestDjangoSessionNeedsSecretKey(t *testing.T) {
	cfg := Default()
	cfg.Asterisk.AMI.Secret = "s"
	cfg.AgentWS.Auth = "django-session"
	err := cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), "agentws.django_secret_key: required when agentws.auth=django-session") ||
		!strings.Contains(err.Error(), "oml_settings_local.py") {
		t.Errorf("django-session without SECRET_KEY: %v", err)
	}
	cfg.AgentWS.DjangoSecretKey = "s1+*bfrvb@=k@c&9=pm!0sijjewneu5p5rojil#q+!a2y&as-4"
	if err := cfg.Validate(); err != nil {
		t.Errorf("django-session with SECRET_KEY: %v", err)
	}
}
