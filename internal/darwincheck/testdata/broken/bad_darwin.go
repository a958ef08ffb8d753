//go:build darwin && arm64

package broken

import "github.com/Code-Hex/vz/v3"

func broken() {
	vz.NoSuchFunction()
	var n int = "not an int"
	_ = n
}
