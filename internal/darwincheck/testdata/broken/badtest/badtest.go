// Package badtest is a fixture whose darwin-only test file has a type error:
// darwincheck checks test files too.
package badtest

// Answer is fine.
func Answer() int { return 42 }
