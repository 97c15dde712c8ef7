package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/omlcrm/oml-crm/config"
)

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
