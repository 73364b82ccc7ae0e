package stages

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"image"
	_ "image/gif"  // register the decoder
	_ "image/jpeg" // register the decoder
	_ "image/png"  // register the decoder
	"io"
	"os"
	"strings"

	"github.com/disintegration/imaging"
	_ "golang.org/x/image/bmp"  // register the decoder
	_ "golang.org/x/image/tiff" // register the decoder
	_ "golang.org/x/image/webp" // register the decoder
)

// imageExts are the file extensions a dir load picks up (lower case).
var imageExts = map[string]bool{
	".png": true, ".jpg": true, ".jpeg": true, ".jpe": true, ".gif": true,
	".bmp": true, ".tif": true, ".tiff": true, ".webp": true,
}

const knownFormats = "png, jpeg, gif, bmp, tiff, webp"

// DecodeFile decodes the image file at path. It reads the header first and
// refuses an image of more than maxPixels pixels (0: no limit) before any
// pixel memory is allocated; JPEG EXIF orientation is applied. Every error
// names the file.
func DecodeFile(path string, maxPixels int) (image.Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, unwrapPath(err))
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, unwrapPath(err))
	}
	if st.IsDir() {
		return nil, fmt.Errorf("%s: is a folder, not an image", path)
	}
	return decodeSeeker(path, f, st.Size(), maxPixels)
}

// DecodeBytes decodes an image read into memory (a blob object) as
// [DecodeFile] decodes a file; name is how errors call it.
func DecodeBytes(name string, data []byte, maxPixels int) (image.Image, error) {
	return decodeSeeker(name, bytes.NewReader(data), int64(len(data)), maxPixels)
}

func decodeSeeker(path string, f io.ReadSeeker, size int64, maxPixels int) (image.Image, error) {
	if size == 0 {
		return nil, fmt.Errorf("%s: empty file (0 bytes)", path)
	}
	cfg, format, err := image.DecodeConfig(bufio.NewReader(f))
	if err != nil {
		return nil, headerError(path, format, err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return nil, fmt.Errorf("%s: %s image has no pixels (%dx%d)", path, format, cfg.Width, cfg.Height)
	}
	if px := int64(cfg.Width) * int64(cfg.Height); maxPixels > 0 && px > int64(maxPixels) {
		return nil, fmt.Errorf("%s: %dx%d is %d pixels, more than max_pixels %d", path, cfg.Width, cfg.Height, px, maxPixels)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("%s: %w", path, unwrapPath(err))
	}
	img, err := decode(bufio.NewReader(f), format == "jpeg")
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: decode %s: the file is truncated (%w)", path, format, err)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: decode %s: %w", path, format, err)
	}
	return img, nil
}

// decode turns a decoder panic (some decoders panic on hostile input) into
// an error, so one bad file cannot take the host down.
func decode(r io.Reader, orient bool) (img image.Image, err error) {
	defer func() {
		if p := recover(); p != nil {
			img, err = nil, fmt.Errorf("decoder panicked: %v", p)
		}
	}()
	if orient {
		// Only JPEG carries EXIF orientation; imaging's orientation reader
		// pipes every byte through a goroutine, so skip it for other formats.
		return imaging.Decode(r, imaging.AutoOrientation(true))
	}
	img, _, err = image.Decode(r)
	return img, err
}

func headerError(path, format string, err error) error {
	switch {
	case errors.Is(err, image.ErrFormat):
		return fmt.Errorf("%s: not an image in a known format (%s)", path, knownFormats)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return fmt.Errorf("%s: truncated %s header", path, format)
	}
	return fmt.Errorf("%s: bad %s header: %w", path, format, err)
}

// unwrapPath drops the *fs.PathError wrapper whose message repeats the path.
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func isImageFile(name string) bool {
	i := strings.LastIndexByte(name, '.')
	return i >= 0 && imageExts[strings.ToLower(name[i:])]
}
