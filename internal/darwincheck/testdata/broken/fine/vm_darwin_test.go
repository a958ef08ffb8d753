//go:build darwin && arm64

package fine

import "testing"

func TestNewMachine(t *testing.T) {
	if _, err := NewMachine("/nonexistent"); err == nil {
		t.Fatal("want an error for a missing kernel")
	}
}
