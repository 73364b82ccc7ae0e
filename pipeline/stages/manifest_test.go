package stages

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/genpipe/genpipe/pipeline/item"
)

func scoredItem(i int) item.Item {
	it := testItem(i)
	return it.WithScores(map[string]float64{"bpd": 1 + float64(i)/4, "ll": 0 - float64(i)})
}

// TestManifestAfterInterruptAndResume: a run saves two items and dies
// (no Close); the resumed run skips them, saves the other two and closes:
// the manifest lists all four, in index order, with their scores; the
// sidecars carry the scores too, and no journal is left behind.
func TestManifestAfterInterruptAndResume(t *testing.T) {
	for _, format := range []string{"jsonl", "csv"} {
		t.Run(format, func(t *testing.T) {
			dir := t.TempDir()
			raw := func() map[string]any { return map[string]any{"manifest": format, "name": "{label}/{name}"} }
			first := newSaver(t, dir, raw(), false)
			for _, i := range []int{1, 0} { // workers finish out of order
				if err := first.Write(scoredItem(i)); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := os.Stat(filepath.Join(dir, "manifest."+format)); err == nil {
				t.Fatal("a manifest before the run ended")
			}
			second := newSaver(t, dir, raw(), false)
			for i := 0; i < 4; i++ {
				if second.Done(scoredItem(i)) {
					continue
				}
				if i < 2 {
					t.Fatalf("item %d was not done after the first run", i)
				}
				if err := second.Write(scoredItem(i)); err != nil {
					t.Fatal(err)
				}
			}
			if err := second.Close(); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(filepath.Join(dir, "manifest."+format))
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]string{
				"jsonl": `{"name":"0/img00.png","index":0,"source":"in/img00.png","label":0,"scores":{"bpd":1,"ll":0}}
{"name":"1/img01.png","index":1,"source":"in/img01.png","label":1,"scores":{"bpd":1.25,"ll":-1}}
{"name":"2/img02.png","index":2,"source":"in/img02.png","label":2,"scores":{"bpd":1.5,"ll":-2}}
{"name":"0/img03.png","index":3,"source":"in/img03.png","label":0,"scores":{"bpd":1.75,"ll":-3}}
`,
				"csv": `name,index,source,label,bpd,ll
0/img00.png,0,in/img00.png,0,1,0
1/img01.png,1,in/img01.png,1,1.25,-1
2/img02.png,2,in/img02.png,2,1.5,-2
0/img03.png,3,in/img03.png,0,1.75,-3
`,
			}[format]
			if string(got) != want {
				t.Errorf("manifest:\n%s\nwant:\n%s", got, want)
			}
			noTemps(t, dir)

			// A third run with nothing to do keeps the manifest whole; an
			// image removed by hand leaves it (and is redone if the run
			// sees its item again).
			os.Remove(filepath.Join(dir, "2", "img02.png"))
			third := newSaver(t, dir, raw(), false)
			for i := 0; i < 4; i++ {
				if i != 2 && !third.Done(scoredItem(i)) {
					t.Fatalf("item %d not done in the third run", i)
				}
			}
			if err := third.Close(); err != nil {
				t.Fatal(err)
			}
			again, _ := os.ReadFile(filepath.Join(dir, "manifest."+format))
			if lines := strings.Count(string(again), "\n"); lines != strings.Count(want, "\n")-1 || strings.Contains(string(again), "img02") {
				t.Errorf("after removing img02 the manifest is:\n%s", again)
			}
		})
	}
}

func TestSidecarCarriesScores(t *testing.T) {
	dir := t.TempDir()
	s := newSaver(t, dir, map[string]any{}, false)
	it := scoredItem(3)
	st := it.Prov[1]
	st.Scores = map[string]float64{"bpd": 1.75, "ll": -3}
	it.Prov = []item.Step{it.Prov[0], st}
	if err := s.Write(it); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "img03.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rec ProvenanceRecord
	if err := json.Unmarshal(data, &rec); err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{"bpd": 1.75, "ll": -3}
	if !reflect.DeepEqual(rec.Scores, want) || !reflect.DeepEqual(rec.Stages[1].Scores, want) {
		t.Errorf("sidecar scores %v, step scores %v, want %v", rec.Scores, rec.Stages[1].Scores, want)
	}
}

func TestCheckSaveManifest(t *testing.T) {
	errs := CheckSave(checked(t, SaveParam, map[string]any{"dir": "o", "manifest": "csv", "images": false, "grid": map[string]any{}}))
	if len(errs) != 1 || errs[0].Path != "manifest" || !strings.Contains(errs[0].Msg, "images is false") {
		t.Errorf("errors %v", errs)
	}
}
