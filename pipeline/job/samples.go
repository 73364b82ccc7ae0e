package job

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"regexp"

	"github.com/genpipe/genpipe/pipeline/item"
	"github.com/genpipe/genpipe/pipeline/stages"
	"github.com/genpipe/genpipe/sdk"
)

// LatestSamples is the name of the copy of the newest sample grid in the
// samples folder.
const LatestSamples = "latest.png"

// writeSamples saves the samples a plugin reported at a step as one grid,
// dir/step-NNNNNN.png, and copies it to dir/latest.png, both atomically.
// spec is the preset's output spec (its value range converts float
// samples); frame sequences show their first frame. It returns the grid's
// path.
func writeSamples(dir string, ev sdk.TrainEvent, spec *sdk.ImageSpec) (string, error) {
	items, err := item.FromTensor(ev.Samples, spec)
	if err != nil {
		return "", err
	}
	if len(items) == 0 {
		return "", fmt.Errorf("no images")
	}
	imgs := make([]image.Image, len(items))
	for i, frames := range items {
		imgs[i] = frames[0]
	}
	cols := ev.SampleColumns
	if cols <= 0 {
		cols = int(math.Ceil(math.Sqrt(float64(len(imgs)))))
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, stages.Grid(imgs, cols, 2, color.White)); err != nil {
		return "", err
	}
	file := filepath.Join(dir, fmt.Sprintf("step-%06d.png", ev.Step))
	if err := writeAtomic(file, buf.Bytes()); err != nil {
		return "", err
	}
	if err := writeAtomic(filepath.Join(dir, LatestSamples), buf.Bytes()); err != nil {
		return "", err
	}
	return file, nil
}

// stepGrid matches the names writeSamples gives grids.
var stepGrid = regexp.MustCompile(`^step-\d{6,}\.png$`)

// clearSamples removes the grids of an earlier run from dir (only files
// named as writeSamples names them), so that a run started from the
// beginning leaves a folder of its own grids only. A missing dir is fine.
func clearSamples(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		if name := e.Name(); !e.IsDir() && (stepGrid.MatchString(name) || name == LatestSamples) {
			if err := os.Remove(filepath.Join(dir, name)); err != nil {
				return err
			}
		}
	}
	return nil
}
