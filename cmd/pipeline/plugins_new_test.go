package main

import (
	"bytes"
	"image"
	"image/color"
	_ "image/jpeg"
	_ "image/png"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestPluginsNewBuilds is the "done when": a plugin scaffolded by
// `pipeline plugins new` into a folder outside the repository builds through
// the documented route (go mod tidy against the replace to this clone, no
// go.work), passes go vet and its own tests, sdktest's conformance kit
// against the real built plugin among them, and then runs in a pipeline on
// real photos, which come out inverted as the plugin says.
//
// It runs the Go tool several times (about a minute on the 2-core
// development machine, with the build cache shared), so -short skips it.
func TestPluginsNewBuilds(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and tests a generated module with the go command (slow); runs without -short")
	}
	// Mostly waiting on the go command: overlap it with the other slow tests.
	t.Parallel()
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goBin); err != nil {
		goBin = "go"
	}
	// A hyphenated name: the package (myinvert) differs from the name, the
	// import path's last element and the binary's suffix.
	const name = "my-invert"
	dir := filepath.Join(t.TempDir(), name)
	// step runs cmd and returns its stdout and stderr.
	step := func(what string, cmd *exec.Cmd) (string, string) {
		t.Helper()
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		start := time.Now()
		if err := cmd.Run(); err != nil {
			t.Fatalf("%s: %v\nstdout:\n%s\nstderr:\n%s", what, err, stdout.String(), stderr.String())
		}
		t.Logf("%s: %v", what, time.Since(start).Round(10*time.Millisecond))
		return stdout.String(), stderr.String()
	}
	// As the user runs it: from outside the clone, naming it.
	scaffold := exec.Command(pipelineExe(t), "plugins", "new", name, dir, "--sdk", repoRoot)
	scaffold.Dir = t.TempDir()
	out, _ := step("pipeline plugins new", scaffold)
	if !strings.Contains(out, "go mod tidy") {
		t.Errorf("plugins new does not tell the next steps:\n%s", out)
	}

	// GOWORK=off: a go.work above the temporary folder (or named by the
	// environment) must not stand in for the generated go.mod.
	env := append(os.Environ(), "GOWORK=off")
	goCmd := func(args ...string) *exec.Cmd {
		c := exec.Command(goBin, args...)
		c.Dir, c.Env = dir, env
		return c
	}
	tidy := goCmd("mod", "tidy")
	tidy.Env = append(tidy.Env, "GOFLAGS=-mod=mod")
	step("go mod tidy", tidy)
	step("go vet ./...", goCmd("vet", "./..."))
	test, _ := step("go test ./...", goCmd("test", "-count=1", "-v", "./..."))
	for _, want := range []string{"--- PASS: TestConformance ", "--- PASS: TestConformance/capabilities/default/translate ", "--- PASS: TestTranslate "} {
		if !strings.Contains(test, want) {
			t.Errorf("go test output lacks %q:\n%s", want, test)
		}
	}
	step("go build", goCmd("build", "-o", "bin/", "./cmd/pipeline-plugin-"+name))

	// Run the generated example pipeline on two photos: a gray PNG and a
	// colour JPEG.
	images := filepath.Join(dir, "images")
	photos := []string{filepath.Join("people", "camera.png"), filepath.Join("animals", "chelsea.jpg")}
	if err := os.MkdirAll(images, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range photos {
		b, err := os.ReadFile(filepath.Join(repoRoot, "examples", "data", "photos", p))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(images, filepath.Base(p)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	run := exec.Command(pipelineExe(t), "run", "example.yaml")
	run.Dir = dir
	mark := newMark(t.Name())
	run.Env = append(os.Environ(), markEnv+"="+mark)
	t.Cleanup(func() { killStray(mark) })
	if _, summary := step("pipeline run example.yaml", run); !strings.Contains(summary, "wrote 2 outputs") {
		t.Errorf("pipeline run: %s", summary)
	}
	if left := waitNoPlugins(mark, 5*time.Second); len(left) > 0 {
		t.Errorf("plugin processes left behind: %v", left)
	}

	// The op is the full negative (example.yaml sets amount: 1). The PNG
	// decodes the same in host and test, so it must be exact; a JPEG's
	// YCbCr to RGB conversion may round differently, by 1 or 2.
	for _, p := range photos {
		base := strings.TrimSuffix(filepath.Base(p), filepath.Ext(p))
		in := decodeFile(t, filepath.Join(images, filepath.Base(p)))
		got := decodeFile(t, filepath.Join(dir, "out", base+".png"))
		tol := 0
		if strings.HasSuffix(p, ".jpg") {
			tol = 2
		}
		if got.Bounds().Size() != in.Bounds().Size() {
			t.Fatalf("%s: output is %v, input %v", base, got.Bounds().Size(), in.Bounds().Size())
		}
		worst, moved := 0, 0
		b := in.Bounds()
		for y := b.Min.Y; y < b.Max.Y; y++ {
			for x := b.Min.X; x < b.Max.X; x++ {
				i := color.NRGBAModel.Convert(in.At(x, y)).(color.NRGBA)
				o := color.NRGBAModel.Convert(got.At(x-b.Min.X+got.Bounds().Min.X, y-b.Min.Y+got.Bounds().Min.Y)).(color.NRGBA)
				for c, iv := range []uint8{i.R, i.G, i.B} {
					ov := []uint8{o.R, o.G, o.B}[c]
					worst = max(worst, absInt(int(ov)-(255-int(iv))))
					moved += absInt(int(ov) - int(iv))
				}
			}
		}
		if worst > tol {
			t.Errorf("%s: a pixel is %d away from the inverted input (tolerance %d)", base, worst, tol)
		}
		if mean := float64(moved) / float64(3*b.Dx()*b.Dy()); mean < 30 {
			t.Errorf("%s: the output differs from the input by %.1f per channel on average: not inverted", base, mean)
		}
	}
}

func decodeFile(t *testing.T, p string) image.Image {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, _, err := image.Decode(f)
	if err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	return img
}

func absInt(v int) int {
	if v < 0 {
		return -v
	}
	return v
}
