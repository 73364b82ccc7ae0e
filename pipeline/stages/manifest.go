package stages

import (
	"bufio"
	"bytes"
	"context"
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
	"time"

	"github.com/genpipe/genpipe/internal/atomicfile"
	"github.com/genpipe/genpipe/pipeline/blobstore"
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

	// store is set for a save into blob storage, where an object cannot
	// be appended to: the journal is then a folder of objects, each
	// holding the entries of a batch (flushed every journalBatch entries
	// or journalEvery, whichever comes first, and at Close), file and
	// journal being relative to the store. A kill loses at most the last
	// batch's entries; their items' objects are there, so the resumed run
	// skips them, and it lists them from what the skipped items carry
	// (fallback), without the scores of stages after the load.
	store    *blobstore.Store
	runID    string
	pending  []byte
	npending int
	seq      int
	flushed  time.Time
	fallback []ManifestEntry
}

const (
	journalBatch = 256
	journalEvery = 2 * time.Second
)

// newStoreManifest is newManifest for a save into blob storage.
func newStoreManifest(st *blobstore.Store, runID, format, shard string, scores []string) *manifest {
	base := "manifest." + format
	journal := ".genpipe-manifest"
	if shard != "" {
		base = shardName(base, shard)
		journal += ".shard-" + shard
	}
	return &manifest{format: format, file: base, journal: journal + "/", scores: scores, store: st, runID: runID, flushed: time.Now()}
}

// skipped notes the entry of an item skipped because an earlier run saved
// it, for a blob manifest whose journal lost it (see manifest.store).
func (m *manifest) skipped(e ManifestEntry) {
	if m.store == nil {
		return
	}
	m.mu.Lock()
	m.fallback = append(m.fallback, e)
	m.mu.Unlock()
}

// flush writes the pending journal entries as one object; m.mu is held.
func (m *manifest) flush() error {
	if m.npending == 0 {
		return nil
	}
	name := fmt.Sprintf("%s%s-%06d.jsonl", m.journal, m.runID, m.seq)
	if err := m.store.Write(context.Background(), name, m.pending, nil); err != nil {
		return fmt.Errorf("manifest journal: %w", err)
	}
	m.seq++
	m.pending, m.npending, m.flushed = m.pending[:0], 0, time.Now()
	return nil
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
	if m.store != nil {
		m.pending = append(m.pending, line...)
		m.npending++
		if m.npending >= journalBatch || time.Since(m.flushed) >= journalEvery {
			return m.flush()
		}
		return nil
	}
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
	if m.store != nil {
		return m.closeStore()
	}
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
	out := m.encode(kept)
	if err := atomicfile.Write(m.file, out, 0o644); err != nil {
		return fmt.Errorf("manifest: %w", err)
	}
	if err := os.Remove(m.journal); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("manifest journal: %w", unwrapPath(err))
	}
	return nil
}

// encode sorts the entries by index and name and returns the manifest.
func (m *manifest) encode(kept []ManifestEntry) []byte {
	sort.SliceStable(kept, func(i, j int) bool {
		if kept[i].Index != kept[j].Index {
			return kept[i].Index < kept[j].Index
		}
		return kept[i].Name < kept[j].Name
	})
	if m.format == "csv" {
		return manifestCSV(kept, m.scores)
	}
	var buf bytes.Buffer
	for _, e := range kept {
		line, _ := json.Marshal(e)
		buf.Write(append(line, '\n'))
	}
	return buf.Bytes()
}

// closeStore is close for a blob manifest: the earlier manifest, the
// skipped items' entries and the journal objects (this run's and those of
// interrupted runs), the last entry of a name winning, less the entries
// whose object is gone (found by one streamed listing of the output
// prefix, not one request per entry); then the manifest is written whole
// and the journal objects read are removed.
func (m *manifest) closeStore() error {
	ctx := context.Background()
	m.mu.Lock()
	err := m.flush()
	fallback := m.fallback
	m.fallback = nil
	m.mu.Unlock()
	if err != nil {
		return err
	}
	data, err := m.store.ReadAll(ctx, m.file)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("manifest: %w", err)
	}
	old, err := m.parse(data)
	if err != nil {
		return err
	}
	entries := append(fallback, old...)
	var parts []string
	journal := m.store.Sub(m.journal)
	err = journal.List(ctx, false, func(rel string, _ int64) error {
		if !strings.HasSuffix(rel, ".jsonl") {
			return nil
		}
		b, err := journal.ReadAll(ctx, rel)
		if err != nil {
			return err
		}
		parts = append(parts, rel)
		entries = append(entries, parseJSONL(b)...)
		return nil
	})
	if err != nil {
		return fmt.Errorf("manifest journal: %w", err)
	}
	entries = lastPerName(entries)
	at := make(map[string]int, len(entries))
	for i, e := range entries {
		at[e.Name] = i
	}
	present := make([]bool, len(entries))
	err = m.store.List(ctx, true, func(rel string, _ int64) error {
		if i, ok := at[rel]; ok {
			present[i] = true
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("manifest: %w", err)
	}
	kept := entries[:0]
	for i, e := range entries {
		if present[i] {
			kept = append(kept, e)
		}
	}
	if err := m.store.Write(ctx, m.file, m.encode(kept), nil); err != nil {
		return fmt.Errorf("manifest: %w", err)
	}
	for _, p := range parts {
		if err := journal.Delete(ctx, p); err != nil {
			return fmt.Errorf("manifest journal: %w", err)
		}
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
	return m.parse(data)
}

// parse returns the entries of a manifest's bytes (none for none).
func (m *manifest) parse(data []byte) ([]ManifestEntry, error) {
	if m.format == "jsonl" {
		return parseJSONL(data), nil
	}
	if len(data) == 0 {
		return nil, nil
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
	return scanJSONL(data)
}

// parseJSONL is readJournal for bytes in memory; a line too long for the
// scanner ends the entries, as a torn line does.
func parseJSONL(data []byte) []ManifestEntry {
	out, _ := scanJSONL(data)
	return out
}

func scanJSONL(data []byte) ([]ManifestEntry, error) {
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
