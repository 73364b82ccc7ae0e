//go:build !nogcs

package blobstore

import _ "gocloud.dev/blob/gcsblob" // registers gs:// with blob.DefaultMux

func init() { drivers["gs"] = true }
