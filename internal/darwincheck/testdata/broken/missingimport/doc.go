// Package missingimport is a fixture whose darwin-only file imports packages
// that no required module provides: go list reports errors there.
package missingimport
