// hclfmt reads HCL on stdin and writes what hclwrite.Format makes of it on
// stdout: the reference for lifeboat fmt (see ../regenerate.sh).
package main

import (
	"io"
	"os"

	"github.com/hashicorp/hcl/v2/hclwrite"
)

func main() {
	src, err := io.ReadAll(os.Stdin)
	if err != nil {
		os.Stderr.WriteString(err.Error() + "\n")
		os.Exit(1)
	}
	os.Stdout.Write(hclwrite.Format(src))
}
