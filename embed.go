// Package omlcrm holds what the oml-crm binary carries with it: the demo's catalog
// (testdata/catalog/demo.yaml), so `oml-crm demo` runs from an empty folder.
package omlcrm

import _ "embed"

// DemoCatalog is testdata/catalog/demo.yaml: one campaign per campaign type and per
// trigger/target/method/format, pointing at the demo's CRM receiver.
//
//go:embed testdata/catalog/demo.yaml
var DemoCatalog []byte
