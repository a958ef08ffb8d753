// Package broken is a fixture for darwincheck's tests: ok.go builds
// everywhere, vm_darwin.go uses vz correctly and bad_darwin.go does not.
package broken

// Name is portable and always type-checks.
func Name() string { return "broken" }
