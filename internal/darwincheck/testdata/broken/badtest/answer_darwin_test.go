//go:build darwin && arm64

package badtest

import "testing"

func TestAnswer(t *testing.T) {
	var s string = Answer()
	_ = s
}
