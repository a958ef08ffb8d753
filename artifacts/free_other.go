//go:build !linux && !darwin

package artifacts

import (
	"fmt"
	"runtime"
)

func freeBytes(string) (int64, error) {
	return 0, fmt.Errorf("cannot measure free space on %s", runtime.GOOS)
}
