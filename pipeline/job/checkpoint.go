package job

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/genpipe/genpipe/internal/atomicfile"
)

// checkpointMagic starts a training checkpoint file. The layout is the
// magic, an 8-byte little-endian header length, the JSON header
// ([checkpointState]), then the plugin's bytes, opaque to the host.
const checkpointMagic = "genpipe-checkpoint\n"

// checkpointState is the host's part of a checkpoint: where in the data
// stream the plugin's state was taken, and what that stream depends on.
type checkpointState struct {
	Version int `json:"version"`
	// File and FileSHA256 are the pipeline file the run was started from.
	File       string `json:"file"`
	FileSHA256 string `json:"file_sha256"`
	Model      string `json:"model"`
	Preset     string `json:"preset,omitempty"`
	// Seed, Shuffle, Items and Batch fix the order of the data: a resume
	// with other values would not continue the same stream.
	Seed    uint64 `json:"seed"`
	Shuffle bool   `json:"shuffle"`
	Items   int    `json:"items"`
	// RoleItems are the counts of the other train inputs, in the
	// preset's order (none for one stream).
	RoleItems []int `json:"role_items,omitempty"`
	// Models name the model stages the training items go through
	// ("STAGE: MODEL PRESET WEIGHTS PARAMS", load side first; none for
	// a chain of host stages): another encoder, or the same one with
	// other parameters, would continue the stream with other data.
	Models []string `json:"models,omitempty"`
	Batch  int      `json:"batch"`
	Epochs int      `json:"epochs"`
	// Step is the number of batches the plugin had received when it saved
	// the state; Epoch (from 0) and EpochBatches say the same per epoch.
	Step         int    `json:"step"`
	Epoch        int    `json:"epoch"`
	EpochBatches int    `json:"epoch_batches"`
	Time         string `json:"time"`
}

// writeCheckpoint writes the checkpoint atomically: a crash leaves the
// previous one or this one, never a mix.
func writeCheckpoint(path string, st checkpointState, plugin []byte) error {
	head, err := json.Marshal(st)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	buf.WriteString(checkpointMagic)
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(head)))
	buf.Write(n[:])
	buf.Write(head)
	buf.Write(plugin)
	return writeAtomic(path, buf.Bytes())
}

// readCheckpoint reads a checkpoint; a missing file is os.ErrNotExist.
func readCheckpoint(path string) (checkpointState, []byte, error) {
	var st checkpointState
	b, err := os.ReadFile(path)
	if err != nil {
		return st, nil, err
	}
	rest, ok := bytes.CutPrefix(b, []byte(checkpointMagic))
	if !ok || len(rest) < 8 {
		return st, nil, fmt.Errorf("checkpoint %s: not a genpipe training checkpoint", path)
	}
	n := binary.LittleEndian.Uint64(rest)
	rest = rest[8:]
	if n > uint64(len(rest)) {
		return st, nil, fmt.Errorf("checkpoint %s: truncated (header of %d bytes, %d left)", path, n, len(rest))
	}
	if err := json.Unmarshal(rest[:n], &st); err != nil {
		return st, nil, fmt.Errorf("checkpoint %s: header: %w", path, err)
	}
	if st.Version != 1 {
		return st, nil, fmt.Errorf("checkpoint %s: version %d, this program reads version 1", path, st.Version)
	}
	return st, rest[n:], nil
}

// writeAtomic writes b to path atomically (temporary file, fsync,
// rename, fsync of the folder), creating the folder.
func writeAtomic(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return atomicfile.Write(path, b, 0o644)
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil || !errors.Is(err, os.ErrNotExist)
}
