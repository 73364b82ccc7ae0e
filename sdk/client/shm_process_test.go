package client_test

import (
	"context"
	"errors"
	"os"
	"reflect"
	"runtime"
	"testing"
	"time"

	"github.com/genpipe/genpipe/sdk"
	"github.com/genpipe/genpipe/sdk/client"
	"github.com/genpipe/genpipe/sdk/sdktest"
)

// sharedMemoryExpected says whether a host here sends tensor bytes through
// shared memory.
func sharedMemoryExpected() bool { return runtime.GOOS == "linux" && client.SharedMemoryEnabled() }

// TestSharedMemoryRoundTrip sends uint8 and float32 images, latents and
// generated images through a real plugin process and its shared memory.
func TestSharedMemoryRoundTrip(t *testing.T) {
	if !sharedMemoryExpected() {
		t.Skip("no shared memory on this OS or with GENPIPE_SHM=off")
	}
	p := start(t)
	if !p.SharedMemory() {
		t.Fatalf("the plugin did not map the shared memory; log:\n%s", p.Logs())
	}
	calls := func() uint64 {
		st, _ := p.Client.SharedMemoryStats()
		return st.Calls
	}
	c := ctx(t)
	u8 := randomUint8(16, 3, 64, 64, 1)
	f32 := randomFloat(8, 3, 32, 32, 2)
	tests := []struct {
		name, preset string
		params       sdk.Params
		in           *sdk.Tensor
		want         func(i int) byte
	}{
		{"uint8 identity", "rgb8", nil, u8, func(i int) byte { return u8.Data[i] }},
		{"uint8 invert", "rgb8", sdk.Params{"op": "invert"}, u8, func(i int) byte { return 255 - u8.Data[i] }},
		{"float32 identity", "rgb", nil, f32, func(i int) byte { return f32.Data[i] }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := load(t, p, sdk.CapTranslate, tt.preset, tt.params)
			before := calls()
			out, err := p.Client.Translate(c, h, &sdk.Batch{Tensor: tt.in})
			if err != nil {
				t.Fatal(err)
			}
			if calls() != before+1 {
				t.Errorf("the call did not go through shared memory")
			}
			if !reflect.DeepEqual(out.Shape, tt.in.Shape) || out.DType != tt.in.DType {
				t.Fatalf("got %v %s, want %v %s", out.Shape, out.DType, tt.in.Shape, tt.in.DType)
			}
			for i := range out.Data {
				if out.Data[i] != tt.want(i) {
					t.Fatalf("byte %d: got %d, want %d", i, out.Data[i], tt.want(i))
				}
			}
		})
	}
	t.Run("encode", func(t *testing.T) {
		h := load(t, p, sdk.CapEncode, "rgb", nil)
		before := calls()
		lat, err := p.Client.Encode(c, h, &sdk.Batch{Tensor: f32})
		if err != nil || !reflect.DeepEqual(lat.Shape, []int{8, 3}) || calls() != before+1 {
			t.Fatalf("got %v, %v; shared calls %d -> %d", shapeOf(lat), err, before, calls())
		}
	})
	t.Run("generate", func(t *testing.T) {
		h := load(t, p, sdk.CapGenerate, "gray28", nil)
		seeds := []uint64{1, 2, 3, 4, 5, 6, 7, 8}
		before := calls()
		all, err := p.Client.Generate(c, h, sdk.GenerateRequest{Seeds: seeds})
		if err != nil || all.Len() != 8 || calls() != before+1 {
			t.Fatalf("got %v, %v; shared calls %d -> %d", shapeOf(all), err, before, calls())
		}
		one, err := p.Client.Generate(c, h, sdk.GenerateRequest{Seeds: seeds[7:]})
		if err != nil || string(one.Data) != string(all.Slice(7, 8).Data) {
			t.Fatalf("seed 8 alone (inline) differs from seed 8 in a batch (shared memory): %v", err)
		}
	})
	if st, _ := p.Client.SharedMemoryStats(); st.InUse != 0 || st.Pending != 0 || st.Fallbacks != 0 {
		t.Errorf("after the calls: %+v, want nothing held and no fallback", st)
	}
}

// TestWithoutSharedMemory runs calls inline: switched off in the host, and
// refused by the plugin (as a plugin built with an older SDK does).
func TestWithoutSharedMemory(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ name, hostEnv, pluginEnv string }{
		{"host GENPIPE_SHM=off", "off", ""},
		{"plugin refuses", "", client.SharedMemoryEnv + "=off"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(client.SharedMemoryEnv, tt.hostEnv)
			env := []string{"SDK_TEST_SERVE=1"}
			if tt.pluginEnv != "" {
				env = append(env, tt.pluginEnv)
			}
			p := sdktest.Start(t, sdktest.Config{Command: []string{exe}, Env: env, Timeout: 30 * time.Second})
			if p.SharedMemory() {
				t.Fatal("tensors go through shared memory")
			}
			h := load(t, p, sdk.CapTranslate, "rgb8", sdk.Params{"op": "invert"})
			in := randomUint8(4, 3, 32, 32, 5)
			out, err := p.Client.Translate(ctx(t), h, &sdk.Batch{Tensor: in})
			if err != nil {
				t.Fatal(err)
			}
			for i := range in.Data {
				if out.Data[i] != 255-in.Data[i] {
					t.Fatalf("byte %d: got %d, want %d", i, out.Data[i], 255-in.Data[i])
				}
			}
		})
	}
}

// TestCancelledCallFreesItsBlock cancels calls that block in the plugin:
// their blocks stay reserved until the plugin has returned, then are
// reused.
func TestCancelledCallFreesItsBlock(t *testing.T) {
	if !sharedMemoryExpected() {
		t.Skip("no shared memory on this OS or with GENPIPE_SHM=off")
	}
	p := start(t)
	h := load(t, p, sdk.CapTranslate, "rgb8", nil)
	in := randomUint8(2, 3, 32, 32, 9)
	for range 3 {
		c, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		_, err := p.Client.Translate(c, h, &sdk.Batch{Tensor: in, Seeds: []uint64{1, sdktest.SeedBlock}})
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("got %v, want context.DeadlineExceeded", err)
		}
	}
	free := waitFor(10*time.Second, func() bool {
		// A call sweeps the blocks the plugin has finished with.
		out, err := p.Client.Translate(ctx(t), h, &sdk.Batch{Tensor: in})
		if err != nil || string(out.Data) != string(in.Data) {
			t.Fatalf("call after the cancelled ones: %v", err)
		}
		st, _ := p.Client.SharedMemoryStats()
		return st.Pending == 0 && st.InUse == 0
	})
	if st, _ := p.Client.SharedMemoryStats(); !free || st.Calls < 4 {
		t.Fatalf("blocks of cancelled calls are not reused: %+v", st)
	}
}

func shapeOf(t *sdk.Tensor) any {
	if t == nil {
		return nil
	}
	return t.Shape
}
