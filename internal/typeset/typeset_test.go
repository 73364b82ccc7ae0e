package typeset

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/image/font/gofont/goregular"
)

// stats returns an image's inked bounding box size and centre of mass.
func stats(pix []uint8) (w, h int, cx, cy float64) {
	x0, y0, x1, y1 := Size, Size, -1, -1
	var m float64
	for y := 0; y < Size; y++ {
		for x := 0; x < Size; x++ {
			v := float64(pix[y*Size+x])
			if v > 0 {
				x0, y0, x1, y1 = min(x0, x), min(y0, y), max(x1, x), max(y1, y)
			}
			m += v
			cx += v * (float64(x) + 0.5)
			cy += v * (float64(y) + 0.5)
		}
	}
	return x1 - x0 + 1, y1 - y0 + 1, cx / m, cy / m
}

func TestEveryFaceFramedLikeMNIST(t *testing.T) {
	for _, name := range Faces() {
		f, err := LoadFace(name)
		if err != nil {
			t.Fatal(err)
		}
		for d := 0; d < 10; d++ {
			for _, p := range []Params{{Digit: d, Size: 1}, {Digit: d, Size: 0.85, Weight: 0.6, Slant: 0.25, Rotate: 8}, {Digit: d, Size: 1, Weight: -0.2, Slant: -0.1, Rotate: -8}} {
				img, err := Render(f, p)
				if err != nil {
					t.Fatalf("%s %+v: %v", name, p, err)
				}
				w, h, cx, cy := stats(img.Pix)
				// The CatmullRom filter's ringing may spill one pixel.
				if max(w, h) > Box+1 || max(w, h) < 10 {
					t.Errorf("%s %+v: inked box %dx%d, want the longer side in [10, %d]", name, p, w, h, Box+1)
				}
				if math.Abs(cx-Size/2) > 0.5 || math.Abs(cy-Size/2) > 0.5 {
					t.Errorf("%s %+v: centre of mass (%.2f, %.2f), want within 0.5 of (14, 14)", name, p, cx, cy)
				}
			}
		}
	}
}

func TestItemIsAFunctionOfSeedAndIndex(t *testing.T) {
	a, err := NewSet(nil, DefaultJitter, 3)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewSet(nil, DefaultJitter, 3)
	c, _ := NewSet(nil, DefaultJitter, 4)
	// b renders in another order: item 17 must not depend on it.
	for _, i := range []int{40, 3, 17} {
		if _, _, err := b.Item(i); err != nil {
			t.Fatal(err)
		}
	}
	x, lx, _ := a.Item(17)
	y, ly, _ := b.Item(17)
	z, lz, _ := c.Item(17)
	if !bytes.Equal(x.Pix, y.Pix) || lx != ly {
		t.Error("item 17 differs between two sets of the same seed")
	}
	if lz != lx || bytes.Equal(x.Pix, z.Pix) {
		t.Errorf("seeds 3 and 4: labels %d and %d (want equal), same pixels (want different)", lx, lz)
	}
	if lx != 7 {
		t.Errorf("item 17 has label %d, want 7 (digits cycle 0-9)", lx)
	}
}

func TestWeightThickens(t *testing.T) {
	f, _ := LoadFace("goregular")
	ink := func(w float64) (s float64) {
		img, err := Render(f, Params{Digit: 8, Size: 1, Weight: w})
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range img.Pix {
			s += float64(v)
		}
		return s
	}
	thin, plain, bold := ink(-0.3), ink(0), ink(0.8)
	if !(thin < plain && plain < bold) {
		t.Errorf("ink at weight -0.3, 0, 0.8: %.0f, %.0f, %.0f; want increasing", thin, plain, bold)
	}
}

func TestFacesFromFilesAndErrors(t *testing.T) {
	p := filepath.Join(t.TempDir(), "regular.ttf")
	if err := os.WriteFile(p, goregular.TTF, 0o644); err != nil {
		t.Fatal(err)
	}
	a, err := LoadFace(p)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := LoadFace("goregular")
	x, _ := Render(a, Params{Digit: 5, Size: 1})
	y, _ := Render(b, Params{Digit: 5, Size: 1})
	if !bytes.Equal(x.Pix, y.Pix) {
		t.Error("a face read from a file renders differently from the same built-in face")
	}
	for _, c := range []struct{ name, want string }{
		{"comic", `unknown face "comic"`},
		{filepath.Join(t.TempDir(), "none.ttf"), "no such file"},
	} {
		if _, err := LoadFace(c.name); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("LoadFace(%q) = %v, want an error containing %q", c.name, err, c.want)
		}
	}
	junk := filepath.Join(t.TempDir(), "junk.ttf")
	os.WriteFile(junk, []byte("not a font"), 0o644)
	if _, err := LoadFace(junk); err == nil || !strings.Contains(err.Error(), "junk.ttf") {
		t.Errorf("LoadFace(junk) = %v, want an error naming the file", err)
	}
	bad := DefaultJitter
	bad.Rotate = Range{10, -10}
	bad.Size = Range{0.1, 1}
	err = bad.Check()
	if err == nil || !strings.Contains(err.Error(), "rotate") || !strings.Contains(err.Error(), "size") {
		t.Errorf("Check of a bad size and rotation = %v, want both named", err)
	}
}
