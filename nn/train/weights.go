package train

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"sync"

	"github.com/genpipe/genpipe/nn/layers"
	"github.com/genpipe/genpipe/sdk/safetensors"
)

var weightsInfo sync.Map // fsys/file -> string

// WeightsInfo describes a preset's embedded weights file for its
// sdk.Preset.Weights ("embedded FILE, N KiB, sha256:..."), or says it is not
// shipped. The hash is computed once per process: Describe runs at every
// plugin start.
func WeightsInfo(fsys fs.FS, file string) string {
	key := fmt.Sprintf("%p/%s", fsys, file)
	if v, ok := weightsInfo.Load(key); ok {
		return v.(string)
	}
	s := "not shipped in this build"
	if b, err := fs.ReadFile(fsys, file); err == nil {
		s = fmt.Sprintf("embedded %s, %d KiB, sha256:%x", file, len(b)/1024, sha256.Sum256(b))
	}
	weightsInfo.Store(key, s)
	return s
}

// LoadWeights loads a preset's weights into ps: the file at path, or when
// path is empty the embedded fsys/file (trained by `pipeline train
// examples/train/PRESET.yaml`). checkArch compares the file's "arch"
// metadata, when there is one, with the preset's, so weights of another
// architecture are named as such; then every tensor is checked. Errors
// name the file.
func LoadWeights(ps *layers.Params, path string, fsys fs.FS, file, preset string, checkArch func(meta string) error) error {
	var f *safetensors.File
	var err error
	where := path
	if path != "" {
		if f, err = safetensors.ReadFile(path); err != nil {
			return err
		}
	} else {
		where = "embedded " + file
		b, err := fs.ReadFile(fsys, file)
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("preset %q has no shipped weights in this build: train them with `pipeline train examples/train/%s.yaml`, then pass weights:", preset, preset)
		}
		if err != nil {
			return err
		}
		if f, err = safetensors.Decode(b); err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
	}
	if s, ok := f.Metadata["arch"]; ok {
		if err := checkArch(s); err != nil {
			return fmt.Errorf("weights %s: %w", where, err)
		}
	}
	if err := ps.Load(f); err != nil {
		return fmt.Errorf("weights %s: %w", where, err)
	}
	return nil
}

// Arch is what the weight helpers need of a model family's architecture
// type: it compares by value, checks itself, and has a canonical JSON form
// (the "arch" metadata of its weights and checkpoints).
type Arch interface {
	comparable
	Validate() error
	JSON() string
}

// ParseArch decodes an architecture from its JSON, refusing unknown keys,
// and validates it.
func ParseArch[A Arch](s string) (A, error) {
	var a A
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&a); err != nil {
		return a, err
	}
	return a, a.Validate()
}

// ArchCheck is the check LoadWeights runs on a file's "arch" metadata for
// a preset of architecture want: weights of another variant or size are
// named as such rather than as a list of mis-shaped tensors.
func ArchCheck[A Arch](want A) func(meta string) error {
	return func(meta string) error {
		got, err := ParseArch[A](meta)
		if err != nil {
			return fmt.Errorf("metadata arch: %w", err)
		}
		if got != want {
			return fmt.Errorf("weights are for architecture %s, preset needs %s", got.JSON(), want.JSON())
		}
		return nil
	}
}
