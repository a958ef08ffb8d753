//go:build darwin && arm64

package missingimport

import (
	"example.com/broken/nosuch"
	"github.com/sxlab/no-such-module/vm"
)

var _ = nosuch.Thing
var _ = vm.Thing
