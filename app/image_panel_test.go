package app

import "testing"

func TestSampleLabel(t *testing.T) {
	for in, want := range map[string]string{
		"fmnist-test-0-ankle-boot.png": "ankle boot (test 0)",
		"fmnist-test-0012-sneaker.png": "sneaker (test 12)",
		"photo.jpg":                    "photo.jpg",
	} {
		if got := sampleLabel(in); got != want {
			t.Errorf("sampleLabel(%q) = %q, want %q", in, got, want)
		}
	}
}
