//go:build !darwin

package vz

// cloneMethod elsewhere is a plain copy: only tests clone off macOS.
const cloneMethod = "copy"

func cloneFile(src, dst string) error { return copyFile(src, dst) }
