package artifacts

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// LowSpaceError is CheckFree's refusal.
type LowSpaceError struct {
	Path       string
	Free, Need int64
}

func (e *LowSpaceError) Error() string {
	return fmt.Sprintf("only %s free under %s; an attempt needs at least %s (collect.min_free)", FormatBytes(e.Free), e.Path, FormatBytes(e.Need))
}

// CheckFree refuses (with a *LowSpaceError) when the file system holding
// path has less than min bytes free for this user. A path that does not
// exist yet is measured at its nearest existing parent.
func CheckFree(path string, min int64) error {
	at, err := existingParent(path)
	if err != nil {
		return fmt.Errorf("free space under %s: %w", path, err)
	}
	free, err := freeBytes(at)
	if err != nil {
		return fmt.Errorf("free space under %s: %w", path, err)
	}
	if free < min {
		return &LowSpaceError{Path: path, Free: free, Need: min}
	}
	return nil
}

func existingParent(p string) (string, error) {
	p, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	for {
		_, err := os.Stat(p)
		if err == nil {
			return p, nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return "", err
		}
		parent := filepath.Dir(p)
		if parent == p {
			return "", err
		}
		p = parent
	}
}

// FormatBytes writes a size for people, in binary units: 512 B, 1.5 KiB,
// 4.7 GiB.
func FormatBytes(n int64) string {
	const unit = 1024
	if n < unit && n > -unit {
		return fmt.Sprintf("%d B", n)
	}
	v := float64(n)
	for _, u := range []string{"KiB", "MiB", "GiB", "TiB"} {
		v /= unit
		if v < unit && v > -unit || u == "TiB" {
			return fmt.Sprintf("%.1f %s", v, u)
		}
	}
	return fmt.Sprintf("%d B", n)
}
