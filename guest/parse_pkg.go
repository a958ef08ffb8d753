package guest

import (
	"io"
	"strconv"
	"strings"
)

// PkgInfo is `pkgutil --pkg-info ID`.
type PkgInfo struct {
	PackageID   string `json:"package_id"`
	Version     string `json:"version"`
	Volume      string `json:"volume"`
	Location    string `json:"location"`
	InstallTime int64  `json:"install_time"` // Unix seconds as printed; 0 when absent
}

const pkgInfoExpected = `"package-id:", "version:", "volume:", "location:", "install-time:" lines`

// ParsePkgInfo parses `pkgutil --pkg-info ID`. pkgutil's "No receipt for
// 'ID' found at '/'." is an error, as is any output without a package-id.
func ParsePkgInfo(r io.Reader) (PkgInfo, error) {
	const kind = "pkg-info"
	lines, err := readLines(kind, pkgInfoExpected, r)
	if err != nil {
		return PkgInfo{}, err
	}
	var info PkgInfo
	for _, l := range lines {
		key, value, ok := strings.Cut(strings.TrimSpace(l.text), ":")
		if !ok {
			continue
		}
		value = strings.TrimSpace(value)
		switch strings.TrimSpace(key) {
		case "package-id":
			info.PackageID = value
		case "version":
			info.Version = value
		case "volume":
			info.Volume = value
		case "location":
			info.Location = value
		case "install-time":
			if n, convErr := strconv.ParseInt(value, 10, 64); convErr == nil {
				info.InstallTime = n
			}
		}
	}
	if info.PackageID == "" {
		return PkgInfo{}, unrecognised(kind, pkgInfoExpected, lines)
	}
	return info, nil
}

// InstallerResult is the output of `installer -pkg PATH -target /`.
type InstallerResult struct {
	PackageName string `json:"package_name"`
	BasePath    string `json:"base_path"`
	// Success is true only when installer said "The install was
	// successful." or "The upgrade was successful." and reported no error.
	Success bool `json:"success"`
	// Errors holds the text after "installer: Error -" and any "The
	// install failed…" line. Empty, never nil.
	Errors []string `json:"errors"`
}

const installerExpected = `"installer: …" lines`

// ParseInstaller parses what `installer` prints. Lines without the
// "installer:" prefix (script output, progress) are ignored; so are
// installer lines this code does not know.
func ParseInstaller(r io.Reader) (InstallerResult, error) {
	const kind = "installer"
	lines, err := readLines(kind, installerExpected, r)
	if err != nil {
		return InstallerResult{}, err
	}
	res := InstallerResult{Errors: []string{}}
	recognised, succeeded := false, false
	for _, l := range lines {
		msg, ok := strings.CutPrefix(strings.TrimSpace(l.text), "installer:")
		if !ok {
			continue
		}
		recognised = true
		msg = strings.TrimSpace(msg)
		switch {
		case strings.HasPrefix(msg, "Package name is "):
			res.PackageName = strings.TrimSpace(strings.TrimPrefix(msg, "Package name is "))
		case strings.HasPrefix(msg, "Installing at base path "):
			res.BasePath = strings.TrimSpace(strings.TrimPrefix(msg, "Installing at base path "))
		case strings.HasPrefix(msg, "Upgrading at base path "):
			res.BasePath = strings.TrimSpace(strings.TrimPrefix(msg, "Upgrading at base path "))
		case msg == "The install was successful." || msg == "The upgrade was successful.":
			succeeded = true
		case strings.HasPrefix(msg, "Error -") || strings.HasPrefix(msg, "Error:"):
			text := strings.TrimSpace(strings.TrimLeft(strings.TrimPrefix(msg, "Error"), " -:"))
			res.Errors = append(res.Errors, text)
		case strings.HasPrefix(msg, "The install failed") || strings.HasPrefix(msg, "The upgrade failed"):
			res.Errors = append(res.Errors, msg)
		}
	}
	if !recognised {
		return InstallerResult{}, unrecognised(kind, installerExpected, lines)
	}
	res.Success = succeeded && len(res.Errors) == 0
	return res, nil
}
