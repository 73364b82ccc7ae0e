package main

// Test inputs are made by the tests: many small noise images for long jobs,
// and the bad files the issue lists.

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "image/gif"
	_ "image/jpeg"

	_ "golang.org/x/image/bmp"
	_ "golang.org/x/image/tiff"
)

// noisePNG encodes a w x h RGB image of uniform noise seeded by seed.
func noisePNG(w, h int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		if i%4 == 3 {
			img.Pix[i] = 255
		} else {
			img.Pix[i] = uint8(r.Uint32())
		}
	}
	var b bytes.Buffer
	// Noise does not compress; skip the effort.
	enc := png.Encoder{CompressionLevel: png.NoCompression}
	if err := enc.Encode(&b, img); err != nil {
		panic(err)
	}
	return b.Bytes()
}

// writeNoiseImages writes n noise PNGs img0000.png... into dir.
func writeNoiseImages(dir string, n, w, h int) error {
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return err
	}
	for i := range n {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("img%04d.png", i)), noisePNG(w, h, uint64(i)), 0o666); err != nil {
			return err
		}
	}
	return nil
}

// badFiles are the kinds of bad input the issue lists, by file name. Each
// fails in load; big.png only because it exceeds max_pixels (the scripts
// set max_pixels between 40x40 = 1600 and its 100x100 = 10000 pixels).
func badFiles() map[string][]byte {
	good := noisePNG(40, 40, 42)
	corrupt := bytes.Clone(good)
	// Flip bytes inside the first IDAT chunk's data (after the 8-byte
	// signature, the 25-byte IHDR chunk and IDAT's 8-byte header): the
	// header still parses, the pixel data does not (CRC mismatch).
	for i := 8 + 25 + 8 + 10; i < 8+25+8+60; i++ {
		corrupt[i] ^= 0xff
	}
	return map[string][]byte{
		"corrupt.png":   corrupt,
		"truncated.png": good[:len(good)/2],
		"empty.png":     {},
		"text.png":      []byte("this is not an image, only text\n"),
		"big.png":       noisePNG(100, 100, 43),
	}
}

// writeBadFiles writes badFiles into dir.
func writeBadFiles(dir string) error {
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return err
	}
	for name, data := range badFiles() {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o666); err != nil {
			return err
		}
	}
	return nil
}

// outputFiles lists the non-hidden files under dir, relative to it, with
// forward slashes. Hidden files (a crash's .NAME.*.tmp leftovers) are not
// outputs.
func outputFiles(dir string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.HasPrefix(d.Name(), ".") && path != dir {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(dir, path)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	return out, err
}

// decodeImage fully decodes an image file.
func decodeImage(path string) (image.Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	img, _, err := image.Decode(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return img, nil
}

// isImageFile says whether a file name has an image extension.
func isImageFile(name string) bool {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".png", ".jpg", ".jpeg", ".gif", ".bmp", ".tif", ".tiff":
		return true
	}
	return false
}

// checkOutputs checks that every non-hidden file under dir is complete:
// images decode, .json sidecars parse. It returns the output files.
func checkOutputs(t testing.TB, dir string) []string {
	t.Helper()
	files, err := outputFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		p := filepath.Join(dir, f)
		switch {
		case isImageFile(f):
			if _, err := decodeImage(p); err != nil {
				t.Errorf("partial or broken output: %v", err)
			}
		case strings.HasSuffix(f, ".json"):
			if err := checkJSONFile(p); err != nil {
				t.Errorf("partial or broken sidecar: %v", err)
			}
		}
	}
	return files
}

// describeImage is "WxH model" for a golden listing.
func describeImage(img image.Image) string {
	b := img.Bounds()
	kind := "rgb"
	switch img.ColorModel() {
	case color.GrayModel, color.Gray16Model:
		kind = "gray"
	default:
		if p, ok := img.(*image.Paletted); ok {
			kind = fmt.Sprintf("paletted(%d)", len(p.Palette))
		}
	}
	return fmt.Sprintf("%dx%d %s", b.Dx(), b.Dy(), kind)
}
