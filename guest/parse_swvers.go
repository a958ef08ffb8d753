package guest

import (
	"io"
	"strings"
)

// SwVers is `sw_vers`.
type SwVers struct {
	ProductName    string `json:"product_name"`
	ProductVersion string `json:"product_version"`
	BuildVersion   string `json:"build_version"`
	// ProductVersionExtra is the Rapid Security Response suffix, e.g.
	// "(a)", printed only when one is installed.
	ProductVersionExtra string `json:"product_version_extra,omitempty"`
}

const swVersExpected = `"ProductName:", "ProductVersion:" or "BuildVersion:" lines`

// ParseSwVers parses `sw_vers`: "Key:" then one or two tabs (or spaces)
// then the value. Unknown keys and other lines are ignored; at least one
// known key must be present.
func ParseSwVers(r io.Reader) (SwVers, error) {
	const kind = "sw-vers"
	lines, err := readLines(kind, swVersExpected, r)
	if err != nil {
		return SwVers{}, err
	}
	var v SwVers
	found := false
	for _, l := range lines {
		key, value, ok := strings.Cut(strings.TrimSpace(l.text), ":")
		if !ok {
			continue
		}
		value = strings.TrimSpace(value)
		switch strings.TrimSpace(key) {
		case "ProductName":
			v.ProductName, found = value, true
		case "ProductVersion":
			v.ProductVersion, found = value, true
		case "BuildVersion":
			v.BuildVersion, found = value, true
		case "ProductVersionExtra":
			v.ProductVersionExtra, found = value, true
		}
	}
	if !found {
		return SwVers{}, unrecognised(kind, swVersExpected, lines)
	}
	return v, nil
}
