//go:build !noazure

package blobstore

import _ "gocloud.dev/blob/azureblob" // registers azblob:// with blob.DefaultMux

func init() { drivers["azblob"] = true }
