package stages

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/genpipe/genpipe/internal/atomicfile"
	"github.com/genpipe/genpipe/pipeline/item"
)

// ManifestEntry is one line of a save's manifest: the saved file and the
// item's metadata, with every score its stages attached.
type ManifestEntry struct {
	// Name is the output file's path relative to the save's dir.
	Name   string             `json:"name"`
	Index  int                `json:"index"`
	Source string             `json:"source,omitempty"`
	Label  *int               `json:"label,omitempty"`
	Scores map[string]float64 `json:"scores,omitempty"`
}

// manifest keeps one save's manifest complete across interrupted and
// resumed runs. Every item written appends its entry to a journal in the
// output folder (one write per line, after the image is in place); Close
// merges the journal with the entries of earlier runs' (the last entry of a
// file wins), keeps those whose file still exists, writes the manifest
// atomically and compacts the journal. An interrupted run never reaches
// Close, but its journal lines stay, so the resumed run, which skips the
// items already saved, still lists them. A kill between an image's
// commit and its journal line loses that line: the window is two system
// calls wide.
type manifest struct {
	format  string // jsonl or csv
	file    string // absolute path of the manifest
	journal string // absolute path of the journal

	mu sync.Mutex
	f  *os.File
}

func newManifest(dir, format, shard string) *manifest {
	base := "manifest." + format
	journal := ".genpipe-manifest.jsonl"
	if shard != "" {
		base = shardName(base, shard)
		journal = shardName(journal, shard)
	}
	return &manifest{format: format, file: filepath.Join(dir, base), journal: filepath.Join(dir, journal)}
}

// add appends an item's entry to the journal.
func (m *manifest) add(e ManifestEntry) error {
	line, err := json.Marshal(e)
	if err != nil {
		return err
	}
	line = append(line, '\n')
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.f == nil {
		if m.f, err = os.OpenFile(m.journal, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644); err != nil {
			return fmt.Errorf("manifest journal: %w", unwrapPath(err))
		}
	}
	if _, err := m.f.Write(line); err != nil {
		return fmt.Errorf("manifest journal %s: %w", m.journal, unwrapPath(err))
	}
	return nil
}

// close writes the manifest from the journal (see manifest).
func (m *manifest) close(dir string) error {
	m.mu.Lock()
	if m.f != nil {
		m.f.Close()
		m.f = nil
	}
	m.mu.Unlock()
	entries, err := readJournal(m.journal)
	if err != nil {
		return err
	}
	kept := entries[:0]
	for _, e := range entries {
		if st, err := os.Stat(filepath.Join(dir, filepath.FromSlash(e.Name))); err == nil && st.Mode().IsRegular() {
			kept = append(kept, e)
		}
	}
	sort.SliceStable(kept, func(i, j int) bool {
		if kept[i].Index != kept[j].Index {
			return kept[i].Index < kept[j].Index
		}
		return kept[i].Name < kept[j].Name
	})
	var journal bytes.Buffer
	for _, e := range kept {
		line, _ := json.Marshal(e)
		journal.Write(append(line, '\n'))
	}
	out := journal.Bytes()
	if m.format == "csv" {
		out = manifestCSV(kept)
	}
	if err := atomicfile.Write(m.file, out, 0o644); err != nil {
		return fmt.Errorf("manifest: %w", err)
	}
	if err := atomicfile.Write(m.journal, journal.Bytes(), 0o644); err != nil {
		return fmt.Errorf("manifest journal: %w", err)
	}
	return nil
}

// readJournal returns the journal's entries, the last of each file only,
// skipping a torn last line of a killed run.
func readJournal(file string) ([]ManifestEntry, error) {
	data, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("manifest journal: %w", unwrapPath(err))
	}
	at := map[string]int{}
	var out []ManifestEntry
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		var e ManifestEntry
		if json.Unmarshal(sc.Bytes(), &e) != nil || e.Name == "" {
			continue
		}
		if i, ok := at[e.Name]; ok {
			out[i] = e
			continue
		}
		at[e.Name] = len(out)
		out = append(out, e)
	}
	return out, sc.Err()
}

// manifestCSV writes entries as CSV: name, index, source, label (empty:
// none), then one column per score name (sorted), empty where an item has
// no such score.
func manifestCSV(entries []ManifestEntry) []byte {
	names := map[string]bool{}
	for _, e := range entries {
		for k := range e.Scores {
			names[k] = true
		}
	}
	cols := make([]string, 0, len(names))
	for k := range names {
		cols = append(cols, k)
	}
	sort.Strings(cols)
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	w.Write(append([]string{"name", "index", "source", "label"}, cols...))
	for _, e := range entries {
		label := ""
		if e.Label != nil {
			label = strconv.Itoa(*e.Label)
		}
		row := []string{e.Name, strconv.Itoa(e.Index), e.Source, label}
		for _, k := range cols {
			v, ok := e.Scores[k]
			if ok {
				row = append(row, strconv.FormatFloat(v, 'g', -1, 64))
			} else {
				row = append(row, "")
			}
		}
		w.Write(row)
	}
	w.Flush()
	return buf.Bytes()
}

func manifestEntry(it item.Item, rel string) ManifestEntry {
	e := ManifestEntry{Name: strings.ReplaceAll(rel, "\\", "/"), Index: it.Index, Source: it.Source, Scores: it.Scores}
	if it.Label >= 0 {
		l := it.Label
		e.Label = &l
	}
	return e
}
