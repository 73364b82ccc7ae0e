// Command pipeline runs YAML image-generation pipelines whose model stages are
// out-of-process plugins. See README.md for a tour.
package main

import "os"

func main() { os.Exit(Execute()) }
