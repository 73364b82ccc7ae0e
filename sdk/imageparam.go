package sdk

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"image"
	"strings"

	// The formats an image parameter may be given in.
	_ "image/gif"
	_ "image/jpeg"
	_ "image/png"
)

// ImageDataURL is how the host hands a plugin the file an image parameter
// ([FormatImage]) names: "data:image/png;base64,..." with the file's bytes.
func ImageDataURL(mediaType string, data []byte) string {
	return "data:" + mediaType + ";base64," + base64.StdEncoding.EncodeToString(data)
}

// DecodeImageParam decodes the value of an image parameter ([FormatImage])
// as the plugin receives it: a data URL of a png, jpeg or gif file.
func DecodeImageParam(v string) (image.Image, error) {
	rest, ok := strings.CutPrefix(v, "data:")
	if !ok {
		return nil, fmt.Errorf("image parameter: expected a data URL (the host reads the file a pipeline names), got %q", truncate(v, 40))
	}
	meta, payload, ok := strings.Cut(rest, ",")
	if !ok || !strings.HasSuffix(meta, ";base64") {
		return nil, fmt.Errorf("image parameter: expected a base64 data URL, got %q", truncate(v, 40))
	}
	data, err := base64.StdEncoding.DecodeString(payload)
	if err != nil {
		return nil, fmt.Errorf("image parameter: %w", err)
	}
	img, _, err := image.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("image parameter: %w", err)
	}
	return img, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
