//go:build !unix

package main

import "os"

// ttyWidth returns 0: without the ioctl, $COLUMNS or the default applies.
func ttyWidth(*os.File) int { return 0 }
