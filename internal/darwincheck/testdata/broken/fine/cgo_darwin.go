//go:build darwin && arm64

package fine

/*
#include <stdlib.h>
#include <string.h>
*/
import "C"

import "unsafe"

// CLen round-trips s through C memory, so the fixture also covers cgo code
// in the checked module (type-checked with FakeImportC).
func CLen(s string) int {
	p := C.CString(s)
	defer C.free(unsafe.Pointer(p))
	return int(C.strlen(p))
}
