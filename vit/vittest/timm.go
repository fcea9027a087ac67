package vittest

import (
	"path/filepath"
	"testing"

	"vitlens/vit"
	"vitlens/vit/checkpoint"
)

// LoadTimmModel loads testdata/reference/<fixture>/timm.safetensors with
// the fixture golden's configuration (heads, activation, prefix tokens: what
// the tensors' shapes cannot say). The class count comes from the tensors:
// a golden made with a head file counts that file's classes.
func LoadTimmModel(t testing.TB, fixture string) *vit.Model {
	t.Helper()
	dir, err := ReferenceDir()
	if err != nil {
		t.Fatal(err)
	}
	c, err := Load(t, fixture).Config()
	if err != nil {
		t.Fatal(err)
	}
	c.Classes = 0
	m, _, err := checkpoint.Load(filepath.Join(dir, fixture, "timm.safetensors"), checkpoint.Options{Override: &c})
	if err != nil {
		t.Fatal(err)
	}
	return m
}
