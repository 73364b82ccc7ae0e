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
// resumed runs. Every item written appends its entry to a hidden journal
// in the output folder (one write per line, after the image is in place);
// Close reads the manifest an earlier run left, adds the journal's entries
// (the last entry of a file wins), keeps those whose file still exists,
// writes the manifest atomically and removes the journal. An interrupted
// run never reaches Close, but its journal stays, so the resumed run,
// which skips the items already saved, still lists them. A kill between an image's
// commit and its journal line loses that line: the window is two system
// calls wide.
type manifest struct {
	format  string   // jsonl or csv
	file    string   // absolute path of the manifest
	journal string   // absolute path of the journal
	scores  []string // columns a CSV manifest always has

	mu sync.Mutex
	f  *os.File
}

func newManifest(dir, format, shard string, scores []string) *manifest {
	base := "manifest." + format
	journal := ".genpipe-manifest.jsonl"
	if shard != "" {
		base = shardName(base, shard)
		journal = shardName(journal, shard)
	}
	return &manifest{format: format, file: filepath.Join(dir, base), journal: filepath.Join(dir, journal), scores: scores}
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
	old, err := m.read()
	if err != nil {
		return err
	}
	journal, err := readJournal(m.journal)
	if err != nil {
		return err
	}
	entries := lastPerName(append(old, journal...))
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
	var out []byte
	if m.format == "csv" {
		out = manifestCSV(kept, m.scores)
	} else {
		var buf bytes.Buffer
		for _, e := range kept {
			line, _ := json.Marshal(e)
			buf.Write(append(line, '\n'))
		}
		out = buf.Bytes()
	}
	if err := atomicfile.Write(m.file, out, 0o644); err != nil {
		return fmt.Errorf("manifest: %w", err)
	}
	if err := os.Remove(m.journal); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("manifest journal: %w", unwrapPath(err))
	}
	return nil
}

// read returns the entries of the manifest an earlier run wrote (none
// when there is none).
func (m *manifest) read() ([]ManifestEntry, error) {
	if m.format == "jsonl" {
		return readJournal(m.file)
	}
	data, err := os.ReadFile(m.file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("manifest: %w", unwrapPath(err))
	}
	rows, err := csv.NewReader(bytes.NewReader(data)).ReadAll()
	if err != nil || len(rows) == 0 || len(rows[0]) < 4 || rows[0][0] != "name" {
		return nil, fmt.Errorf("manifest %s: not a manifest this program wrote (%v); remove it to start a new one", m.file, err)
	}
	head := rows[0]
	var out []ManifestEntry
	for _, r := range rows[1:] {
		e := ManifestEntry{Name: r[0], Source: r[2]}
		e.Index, _ = strconv.Atoi(r[1])
		if l, err := strconv.Atoi(r[3]); err == nil {
			e.Label = &l
		}
		for k := 4; k < len(r) && k < len(head); k++ {
			if v, err := strconv.ParseFloat(r[k], 64); err == nil {
				if e.Scores == nil {
					e.Scores = map[string]float64{}
				}
				e.Scores[head[k]] = v
			}
		}
		out = append(out, e)
	}
	return out, nil
}

// lastPerName keeps the last entry of each file, in first-seen order.
func lastPerName(entries []ManifestEntry) []ManifestEntry {
	at := map[string]int{}
	var out []ManifestEntry
	for _, e := range entries {
		if i, ok := at[e.Name]; ok {
			out[i] = e
			continue
		}
		at[e.Name] = len(out)
		out = append(out, e)
	}
	return out
}

// readJournal returns the entries of a JSON-lines file (a journal or a
// jsonl manifest), skipping a torn last line of a killed run.
func readJournal(file string) ([]ManifestEntry, error) {
	data, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("manifest journal: %w", unwrapPath(err))
	}
	var out []ManifestEntry
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		var e ManifestEntry
		if json.Unmarshal(sc.Bytes(), &e) != nil || e.Name == "" {
			continue
		}
		out = append(out, e)
	}
	return out, sc.Err()
}

// manifestCSV writes entries as CSV: name, index, source, label (empty:
// none), then one column per score name (those given and those of the
// entries, sorted), empty where an item has no such score.
func manifestCSV(entries []ManifestEntry, scores []string) []byte {
	names := map[string]bool{}
	for _, k := range scores {
		names[k] = true
	}
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
