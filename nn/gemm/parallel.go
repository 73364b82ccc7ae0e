package gemm

import "sync"

// task is one block of C for a worker; sent by value so dispatch does not
// allocate.
type task struct {
	p              *problem
	i0, i1, j0, j1 int
}

// Workers live for the life of the process, parked on tasks, so a parallel
// call costs a channel hand-off rather than goroutine creation.
var (
	tasks     = make(chan task)
	workersMu sync.Mutex
	workers   int
)

func ensureWorkers(n int) {
	workersMu.Lock()
	defer workersMu.Unlock()
	for ; workers < n; workers++ {
		go func() {
			for t := range tasks {
				t.p.run(t.i0, t.i1, t.j0, t.j1)
				t.p.wg.Done()
			}
		}()
	}
}

var problemPool = sync.Pool{New: func() any { return new(problem) }}

// runParallel splits C into a tm x tn grid of blocks, one per goroutine.
func runParallel(src *problem, threads, m, n int) {
	mr, nr := src.kern.mr, src.kern.nr
	tm, tn := splitGrid(threads, m, n, src.k, mr, nr)
	if tm*tn == 1 {
		src.run(0, m, 0, n)
		return
	}
	p := problemPool.Get().(*problem)
	*p = problem{
		transA: src.transA, transB: src.transB,
		k: src.k, alpha: src.alpha, beta: src.beta,
		a: src.a, lda: src.lda, b: src.b, ldb: src.ldb, c: src.c, ldc: src.ldc,
		kern: src.kern,
	}
	ensureWorkers(tm*tn - 1)
	tilesM := (m + mr - 1) / mr
	tilesN := (n + nr - 1) / nr
	p.wg.Add(tm*tn - 1)
	var own task
	for bi := 0; bi < tm; bi++ {
		// Block edges fall on tile boundaries so only the last block of C
		// has partial tiles.
		i0 := min(m, bi*tilesM/tm*mr)
		i1 := min(m, (bi+1)*tilesM/tm*mr)
		for bj := 0; bj < tn; bj++ {
			j0 := min(n, bj*tilesN/tn*nr)
			j1 := min(n, (bj+1)*tilesN/tn*nr)
			t := task{p, i0, i1, j0, j1}
			if bi == tm-1 && bj == tn-1 {
				own = t
				continue
			}
			tasks <- t
		}
	}
	p.run(own.i0, own.i1, own.j0, own.j1)
	p.wg.Wait()
	*p = problem{} // drop references to the caller's slices
	problemPool.Put(p)
}

// splitGrid picks tm x tn = threads (or fewer when C has too few tiles)
// minimising the largest block's multiply work plus the packing each
// goroutine repeats: splitting columns makes every goroutine pack all of
// its rows of A, splitting rows makes each pack all of its columns of B.
func splitGrid(threads, m, n, k, mr, nr int) (tm, tn int) {
	tilesM := (m + mr - 1) / mr
	tilesN := (n + nr - 1) / nr
	threads = min(threads, tilesM*tilesN)
	// Packing one element costs about as much as 16 multiply-adds in the
	// micro-kernel.
	const packWeight = 16
	best := -1
	for t := threads; t >= 1 && best < 0; t-- {
		for i := 1; i <= t; i++ {
			if t%i != 0 || i > tilesM || t/i > tilesN {
				continue
			}
			rows := (tilesM + i - 1) / i * mr
			cols := (tilesN + t/i - 1) / (t / i) * nr
			cost := (rows*cols + packWeight*(rows+cols)) * k
			if best < 0 || cost < best {
				best, tm, tn = cost, i, t/i
			}
		}
	}
	return tm, tn
}
