// Package fine is a fixture that type-checks for darwin/arm64: darwincheck
// must report nothing for it.
package fine

// Portable builds everywhere.
func Portable() int { return 1 }
