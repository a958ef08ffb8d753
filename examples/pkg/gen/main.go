// Command gen writes the demo's packages into the current directory
// (run by `go generate ./examples/...` in examples/pkg).
package main

import (
	"fmt"
	"os"

	examplepkg "github.com/sxlab/sxlab/examples/pkg"
)

func main() {
	if err := examplepkg.Write("."); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}
